// Round-to-nearest: every group of W quantized on its own quant.py grid, no error feedback.
// The baseline GPTQ is measured against (the reference's `--nearest`), per channel or per group.
#pragma once

#include "absl/status/statusor.h"
#include "core/quant/quant_spec.h"
#include "core/quant/quantized_linear.h"
#include "core/tensor/matrix.h"

namespace caliber {

// Uses bits, group_size, sym and mse of `spec`. g_idx[i] = i / group_size (0 per channel).
absl::StatusOr<QuantizedLinear> RtnQuantize(const MatrixF& W, const QuantSpec& spec);

}  // namespace caliber
