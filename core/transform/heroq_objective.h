// HeRo-Q's learning objective for one decoder layer and its closed-form gradients
// (docs/methods/heroq.md derives them; tests/core/heroq_objective_test.cc checks them against
// finite differences).
//
//   loss = Σ_m tr(E_m H̃_m E_mᵀ) / tr(W_m H_m W_mᵀ)  +  λ Σ_g λmax(H̃_g) / tr(H̃_g)
//        [ + Σ_m S_p(diag H̃_m) ‖W̃_m‖²_F / (12 q² tr(W_m H_m W_mᵀ))   when act_bits < 16 ]
//
// over the seven linears m (W̃ = L W T, H̃ = M H Mᵀ, M = T⁻¹, transform_matrices.h) and the
// four distinct inputs g (attention, o, MLP, down). E = Q(W̃) − W̃ is the round-to-nearest
// error on the target grid (bits, group size along the transformed inputs, sym/asym, the
// GPTQ reference's min-max rule). The first term is each module's output error relative to
// its output energy (which no transform changes); the second is the spectral concentration of
// each transformed Hessian, which rotations leave alone and the diagonals change.
//
// Q is piecewise constant, so the gradient is that of the piecewise-smooth loss where the
// integer codes do not change: E = s(W̃)·c − W̃ with c fixed and each group's scale s moving
// with the entries that set its range. λmax's gradient is v vᵀ (top eigenvector by power
// iteration, warm-started from the previous call).
//
// The activation term (W·A8): per-token symmetric rounding of x̃ with step Δ_t = max_j|x̃_tj|/q
// (q = 2^(bits−1) − 1) adds output noise of energy Σ_t Δ_t²/12 · ‖W̃‖²_F. Σ_t max_j x̃_tj² is
// approximated from H̃ alone by S_p = (Σ_j H̃_jj^p)^(1/p), p = 8, a smooth max of the channel
// energies: it rewards rotations that even out channel energies and diagonals that move range
// from activations into weights (the SmoothQuant trade-off, now priced against the weights'
// rounding error). Per-token peaks within a channel are not seen (that needs the activations).
#pragma once

#include <array>

#include "core/model/config.h"
#include "core/model/weights.h"
#include "core/transform/transform_params.h"

namespace caliber {

struct HeroqObjectiveOptions {
  int bits = 4;
  int group_size = 128;  // -1: one group per row
  bool sym = true;
  double lambda = 0.05;  // weight of the spectral term
  int act_bits = 16;     // 16: float activations, no activation term; 8: INT8 per token
};

// One layer's fixed data: norm-folded weights (FoldLayerNorms) and the Hessians of their
// inputs in the unquantized, folded model, float64.
struct LayerProblem {
  int layer = 0;
  std::array<MatrixD, 7> w;       // by LinearModule (q, k, v, o, gate, up, down)
  std::array<MatrixD, 4> h;       // by LinearGroup (qkv, o, gate_up, down)
  std::array<double, 7> energy{};  // tr(W H Wᵀ), the denominators
  // Power-iteration warm starts per group (updated by EvaluateLayerObjective).
  mutable std::array<VectorD, 4> top_vector;
};

// Fills energy from w and h; InvalidArgument-free: shapes are the caller's contract.
void ComputeEnergies(LayerProblem& p);

struct LayerObjectiveValue {
  double loss = 0;
  std::array<double, 7> quant{};     // relative quantization error per module
  std::array<double, 4> spectral{};  // λmax/tr per input
  std::array<double, 7> act{};       // the activation term per module (0 without act_bits)
  std::array<double, 4> top_eigenvalue{};
  std::array<double, 4> trace{};
  // Gradients (filled when requested).
  MatrixD g_r1;  // this layer's share of ∂loss/∂R1 (Euclidean)
  LayerTransform grad;  // ∂loss/∂R2 (Euclidean) and ∂loss/∂θ of each diagonal
};

LayerObjectiveValue EvaluateLayerObjective(const ModelConfig& config, const LayerProblem& problem,
                                           const MatrixD& r1, const LayerTransform& t,
                                           const HeroqObjectiveOptions& options, bool gradients);

// Round-to-nearest of W̃ on the options' grid (double precision; the objective's Q).
MatrixD RoundToNearestGrid(const MatrixD& w, const HeroqObjectiveOptions& options);

}  // namespace caliber
