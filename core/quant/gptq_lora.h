// GPTQ-intrinsic LoRA (arXiv 2606.01412): W ≈ Q + B·A with a rank-r float (or low-bit) part
// found inside the GPTQ sweep itself. A = V_rᵀ, the top-r eigenvectors of H: the input
// directions that carry most of the output energy. The layer is rewritten as an augmented one
// over inputs [X, X Aᵀ] with weights [W, 0] and Hessian
//   H_aug = [[H, H Aᵀ], [A H, A H Aᵀ]],
// and one GPTQ pass quantizes the first `in` columns only. The r extra columns are never
// quantized: they absorb the error GPTQ diffuses forward and end as B, since
// X Qᵀ + (X Aᵀ) Bᵀ = X (Q + B·A)ᵀ.
#pragma once

#include "absl/status/statusor.h"
#include "core/quant/quant_spec.h"
#include "core/quant/quantized_linear.h"
#include "core/tensor/matrix.h"

namespace caliber {

// Needs spec.lora_rank > 0. lora_a_bits > 0 quantizes A first (RTN per row, symmetric) and
// builds H_aug from the dequantized A, so B is fitted to the A actually used.
// Fills lora_a [r x in], lora_b [out x r] and the GPTQ fields of the result; the report's
// damp_used refers to H_aug.
absl::StatusOr<QuantizedLinear> GptqLoraQuantize(const MatrixF& W, const MatrixF& H,
                                                 const QuantSpec& spec);

// A [r x in]: the top-r eigenvectors of H as rows (double-precision eigensolver, sign-fixed so
// the largest-magnitude entry is positive), RTN-quantized per row when a_bits > 0.
absl::StatusOr<MatrixF> LoraBasis(const MatrixF& H, int rank, int a_bits);

// [[H, H Aᵀ], [A H, A H Aᵀ]], computed in double and exactly symmetric.
MatrixF AugmentedHessian(const MatrixF& H, const MatrixF& A);

}  // namespace caliber
