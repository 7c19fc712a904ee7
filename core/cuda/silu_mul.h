// SiLU(gate)·up on the device, as caliber::SiluMulInPlace (core/model/ops.h): element-wise
// gate := gate / (1 + exp(−gate)) · up, written into gate, in float32. The device expf
// (≤ 2 ulp) and Eigen's vectorized exp differ by a few ulp, so the two agree to a few float32
// roundings relative to the result, not bit for bit.
#pragma once

#include "absl/status/status.h"
#include "core/cuda/context.h"
#include "core/cuda/device_matrix.h"

namespace caliber::cuda {

// gate and up of the same shape.
absl::Status SiluMul(CudaContext& ctx, DeviceMatrix<float>& gate, const DeviceMatrix<float>& up);

}  // namespace caliber::cuda
