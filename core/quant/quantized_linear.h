// The result of quantizing one linear layer W [out x in]: integer codes on per-group affine
// grids (the GPTQ checkpoint layout: scales/zeros per group and output channel, g_idx per input
// column), an optional float low-rank part B·A, and a report of how it went.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "core/tensor/matrix.h"

namespace caliber {

using CodeMatrix = Eigen::Matrix<uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using IntMatrix = Eigen::Matrix<int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct QuantReport {
  std::string method;
  double damp_used = 0;        // relative damping (fraction of mean diag H) that was applied
  int cholesky_retries = 0;    // times damp was multiplied by 10 before Cholesky succeeded
  int dead_columns = 0;        // inputs with diag(H) == 0, quantized as zero
  double output_energy = 0;    // tr(W H Wᵀ)
  double objective_after = 0;  // tr(E H Eᵀ), E = W - Reconstruct()
  double relative_error = 0;   // objective_after / output_energy = ‖X(W-Ŵ)ᵀ‖² / ‖XWᵀ‖²
  // Refinement (gptq_lora with refine_iters > 0): the objective before refining, then after
  // every Bid-Up sweep and every OLrC step, in order (fewer rounds if a fixed point is
  // reached first). Never increasing.
  std::vector<double> refine_objectives;
  double seconds = 0;
};

struct QuantizedLinear {
  int out_features = 0;
  int in_features = 0;
  int bits = 4;
  int group_size = -1;  // -1: per output channel (one group)
  bool sym = true;
  CodeMatrix codes;              // [out x in], original column order, values 0..2^bits-1
  MatrixF scales;                // [num_groups x out]
  IntMatrix zeros;               // [num_groups x out], values 0..2^bits-1
  std::vector<int32_t> g_idx;    // [in]: the group of each input column
  MatrixF lora_a;                // [r x in]; empty without a low-rank part
  MatrixF lora_b;                // [out x r]
  QuantReport report;

  int num_groups() const { return static_cast<int>(scales.rows()); }
  int lora_rank() const { return static_cast<int>(lora_a.rows()); }
  MatrixF Dequantize() const;   // Q: scale * (code - zero), bit-identical to the quantizer's q
  MatrixF Reconstruct() const;  // Q + B·A
};

// tr((W - Ŵ) H (W - Ŵ)ᵀ) in double: the GPTQ layer objective, ‖X(W - Ŵ)ᵀ‖² up to H's scaling.
double LayerObjective(const MatrixF& W, const MatrixF& What, const MatrixF& H);

}  // namespace caliber
