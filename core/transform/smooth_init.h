// SmoothQuant-style initial diagonals (Xiao et al. 2023): per input channel j,
// s_j = a_j^α / w_j^(1−α), with a_j the channel's activation range and w_j the largest
// |weight| reading it, so x̃ = x/s and W̃ = W·s split the range between them. Activation
// ranges here are RMS values from the Hessian's diagonal (in the rotated basis) — the
// statistic every stage keeps — rather than maxima, which would need the activations.
// Each diagonal is normalized to geometric mean 1 (the loss is invariant to its scale).
#pragma once

#include "core/model/config.h"
#include "core/transform/heroq_objective.h"

namespace caliber {

// Fills t's log_attn, log_mlp, log_vo and log_ud for rotations r1 and t.r2.
void SmoothQuantInit(const ModelConfig& config, const LayerProblem& p, const MatrixD& r1,
                     double alpha, LayerTransform& t);

}  // namespace caliber
