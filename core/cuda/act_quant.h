// Per-token symmetric activation fake quantization on the device, as
// caliber::FakeQuantizePerToken (core/quant/act_quant.h) and vLLM's dynamic per-token int8
// kernel: per row, absmax = max |x|, q = clamp(rint(x · (qmax / absmax)), −qmax − 1, qmax),
// x := q · (absmax / qmax), rounding half to even, an all-zero row left as is. Every step is one
// correctly rounded float32 operation on both sides, so the result is bit-identical to core's.
#pragma once

#include "absl/status/status.h"
#include "core/cuda/context.h"
#include "core/cuda/device_matrix.h"

namespace caliber::cuda {

// x [tokens x features] in place; bits in [2, 8] (8: W·A8's INT8).
absl::Status FakeQuantizePerToken(CudaContext& ctx, DeviceMatrix<float>& x, int bits);

}  // namespace caliber::cuda
