// RMSNorm on the device, as caliber::RmsNorm (core/model/ops.h): per row and per chunk of
// weight.size() columns (Qwen3's per-head q/k norm uses chunks), y = weight * (x / sqrt(mean(x²)
// + eps)) in float32. The sum of squares is a tree reduction instead of core's vectorized
// sequential sum, so results agree to float32 rounding of that sum, not bit for bit.
#pragma once

#include "absl/status/status.h"
#include "core/cuda/context.h"
#include "core/cuda/device_matrix.h"

namespace caliber::cuda {

// x [rows x cols] with cols a multiple of weight.size(); y the same shape, and may be x itself.
absl::Status RmsNorm(CudaContext& ctx, const DeviceMatrix<float>& x, const DeviceBuffer<float>& weight,
                     float eps, DeviceMatrix<float>& y);

}  // namespace caliber::cuda
