#include "core/cuda/linear.h"

#include <cublas_v2.h>

#include <climits>

#include "core/cuda/blas_status.h"
#include "core/cuda/kernel_util.cuh"

namespace caliber::cuda {
namespace {

__global__ void AddBiasKernel(float* y, const float* bias, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = kernel::GlobalThread(); i < n; i += kernel::GlobalStride()) {
    y[i] = __fadd_rn(y[i], bias[i % cols]);
  }
}

}  // namespace

absl::StatusOr<MathMode> Linear(CudaContext& ctx, const DeviceMatrix<float>& x, const DeviceMatrix<float>& w,
                                const DeviceBuffer<float>* bias, DeviceMatrix<float>& y,
                                const MatmulOptions& options) {
  constexpr const char* kOp = "cuda::Linear";
  if (absl::Status s = CheckMatrix(x, -1, -1, kOp, "x"); !s.ok()) return s;
  if (absl::Status s = CheckMatrix(w, -1, x.cols, kOp, "W"); !s.ok()) return s;
  if (absl::Status s = CheckMatrix(y, x.rows, w.rows, kOp, "y"); !s.ok()) return s;
  const bool has_bias = bias != nullptr && !bias->empty();
  if (has_bias && static_cast<int64_t>(bias->size()) != w.rows) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, ": bias has ", bias->size(), " elements for ", w.rows, " outputs"));
  }
  if (x.rows > INT_MAX || x.cols > INT_MAX || w.rows > INT_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": a dimension of ", x.rows, "x", x.cols,
                                                   " · (", w.rows, "x", w.cols, ")ᵀ exceeds int32"));
  }
  const MathMode mode = ResolveMathMode(options, ctx.device().compute_major);
  if (y.size() == 0) return mode;
  const int m = static_cast<int>(w.rows);  // column-major yᵀ [out x tokens] = W [out x in] · xᵀ
  const int n = static_cast<int>(x.rows);
  const int k = static_cast<int>(x.cols);
  const int ld = k > 0 ? k : 1;  // cuBLAS wants ld >= 1 even for k = 0 (then y = 0)
  const float alpha = 1.0f;
  const float beta = 0.0f;
  // Row-major W [out x in] read column-major is Wᵀ [in x out] with ld = in: op T gives W.
  // Row-major x [tokens x in] read column-major is xᵀ [in x tokens]: op N.
  const cublasComputeType_t compute =
      mode == MathMode::kTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  if (absl::Status s = CublasStatus(
          cublasGemmEx(ctx.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, w.data(), CUDA_R_32F,
                       ld, x.data(), CUDA_R_32F, ld, &beta, y.data(), CUDA_R_32F, m, compute,
                       CUBLAS_GEMM_DEFAULT),
          absl::StrCat("cublasGemmEx (", MathModeName(mode), ") y[", n, "x", m, "] = x·Wᵀ, k=", k));
      !s.ok()) {
    return s;
  }
  if (has_bias) {
    AddBiasKernel<<<kernel::BlocksFor(y.size()), kernel::kThreads, 0, ctx.stream()>>>(
        y.data(), bias->data(), y.rows, y.cols);
    if (absl::Status s = LaunchStatus("AddBiasKernel"); !s.ok()) return s;
  }
  return mode;
}

}  // namespace caliber::cuda
