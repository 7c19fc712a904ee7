// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
// Transformers", 2022), reproducing the authors' reference gptq.py `fasterquant` including its
// quirks:
//  - the per-channel grid comes from the whole W once, before dead columns are zeroed;
//  - dead inputs (diag H == 0) get H_ii = 1 and W[:, i] = 0;
//  - static_groups: all group grids from W (original column order) before the sweep;
//    otherwise a group's grid is computed when the group starts, from W as it stands after the
//    lazy updates of the previous BLOCKS (gptq.py reads W, not the block copy W1, so updates
//    inside the current block are not seen);
//  - act_order: perm = argsort(diag H, descending) (stable here), g_idx[perm[j]] = j / group
//    (static groups: g_idx[i] = i / group);
//  - damping damp * mean(diag H); Hinv = upper Cholesky factor of H^-1, in float32.
// If a Cholesky fails, damp is multiplied by 10 and the factorization retried, up to
// spec.max_damp_retries times (the reference has no retry).
//
// Layout: the sweep works on Wᵀ [in x out], so every column of W is a contiguous row; the
// lazy block updates W[:, i2:] -= Err1 · Hinv[i1:i2, i2:] are single GEMMs.
#pragma once

#include "absl/status/statusor.h"
#include "core/quant/quant_spec.h"
#include "core/quant/quantized_linear.h"
#include "core/tensor/matrix.h"

namespace caliber {

// GPTQ of W [out x in] with Hessian H [in x in]. Fills codes, scales, zeros, g_idx and the
// report's damp_used, cholesky_retries, dead_columns and seconds (not the objective).
absl::StatusOr<QuantizedLinear> GptqQuantize(const MatrixF& W, const MatrixF& H,
                                             const QuantSpec& spec);

struct GptqPassResult {
  QuantizedLinear quantized;  // the first `quantized_columns` columns
  MatrixF tail;               // [out x (cols - quantized_columns)], after the sweep
};

// The GPTQ sweep over W [out x cols] and H [cols x cols], quantizing only the first
// `quantized_columns` columns (act_order permutes only those). The remaining columns are never
// quantized (q = w, error 0) but receive every propagated error update: this is how
// GPTQ-intrinsic LoRA grows B in its extra columns.
absl::StatusOr<GptqPassResult> GptqPass(const MatrixF& W, const MatrixF& H, int quantized_columns,
                                        const QuantSpec& spec);

}  // namespace caliber
