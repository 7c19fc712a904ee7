// The linear layer on the device with cuBLAS, as caliber::Linear (core/model/ops.h):
// y = x·Wᵀ (+ bias) with x [tokens x in], W [out x in] and y [tokens x out], all row-major as
// the engine stores them (no transposed copies: the column-major GEMM computes yᵀ = W·xᵀ on the
// same buffers). Float32 by default; MatmulOptions::allow_tf32 lets cuBLAS use TF32 tensor
// cores, and the returned MathMode records what ran. Accumulation order differs from
// OpenBLAS, so results agree to float32 (or TF32) rounding of the dot products.
#pragma once

#include "absl/status/statusor.h"
#include "core/cuda/context.h"
#include "core/cuda/device_matrix.h"
#include "core/cuda/math_mode.h"

namespace caliber::cuda {

// y must already be [x.rows x w.rows]; bias (may be null or empty) has w.rows elements.
absl::StatusOr<MathMode> Linear(CudaContext& ctx, const DeviceMatrix<float>& x, const DeviceMatrix<float>& w,
                                const DeviceBuffer<float>* bias, DeviceMatrix<float>& y,
                                const MatmulOptions& options = {});

}  // namespace caliber::cuda
