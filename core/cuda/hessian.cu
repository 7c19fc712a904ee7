#include "core/cuda/hessian.h"

#include <cublas_v2.h>

#include <climits>

#include "core/cuda/blas_status.h"
#include "core/cuda/kernel_util.cuh"

namespace caliber::cuda {
namespace {

__global__ void ScaleKernel(float* h, int64_t n, float beta) {
  for (int64_t i = kernel::GlobalThread(); i < n; i += kernel::GlobalStride()) h[i] = __fmul_rn(h[i], beta);
}

// Block (bx, by) with bx >= by copies the lower tile (rows bx·32.., cols by·32..) transposed onto
// the upper tile (rows by·32.., cols bx·32..) through shared memory; 32 x 8 threads.
constexpr int kTile = 32;
__global__ void MirrorLowerToUpperKernel(float* h, int64_t n) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t bx = blockIdx.x;
  const int64_t by = blockIdx.y;
  if (bx < by) return;
  for (int j = threadIdx.y; j < kTile; j += blockDim.y) {
    const int64_t row = bx * kTile + j;
    const int64_t col = by * kTile + threadIdx.x;
    if (row < n && col < n) tile[j][threadIdx.x] = h[row * n + col];
  }
  __syncthreads();
  for (int j = threadIdx.y; j < kTile; j += blockDim.y) {
    const int64_t row = by * kTile + j;
    const int64_t col = bx * kTile + threadIdx.x;
    if (row < n && col < n && col > row) h[row * n + col] = tile[threadIdx.x][j];
  }
}

}  // namespace

absl::StatusOr<MathMode> SymmetricRankKUpdate(CudaContext& ctx, const DeviceMatrix<float>& x, float alpha,
                                              float beta, DeviceMatrix<float>& h,
                                              const MatmulOptions& options) {
  constexpr const char* kOp = "cuda::SymmetricRankKUpdate";
  if (absl::Status s = CheckMatrix(x, -1, -1, kOp, "x"); !s.ok()) return s;
  if (absl::Status s = CheckMatrix(h, x.cols, x.cols, kOp, "h"); !s.ok()) return s;
  if (x.rows > INT_MAX || x.cols > INT_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": x is ", x.rows, "x", x.cols, ", beyond int32"));
  }
  const MathMode mode = ResolveMathMode(options, ctx.device().compute_major);
  const int n = static_cast<int>(x.cols);
  const int k = static_cast<int>(x.rows);
  if (n == 0) return mode;
  if (k == 0) {
    ScaleKernel<<<kernel::BlocksFor(h.size()), kernel::kThreads, 0, ctx.stream()>>>(h.data(), h.size(), beta);
    if (absl::Status s = LaunchStatus("ScaleKernel"); !s.ok()) return s;
    return mode;
  }
  // Row-major x [k x n] read column-major is A = xᵀ [n x k] (ld n), so A·Aᵀ = xᵀx; the
  // column-major upper triangle of h is its row-major lower triangle.
  if (mode == MathMode::kTf32) {
    if (absl::Status s = CublasStatus(
            cublasGemmEx(ctx.cublas(), CUBLAS_OP_N, CUBLAS_OP_T, n, n, k, &alpha, x.data(), CUDA_R_32F, n,
                         x.data(), CUDA_R_32F, n, &beta, h.data(), CUDA_R_32F, n,
                         CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT),
            absl::StrCat("cublasGemmEx (tf32) H[", n, "x", n, "] += xᵀx, k=", k));
        !s.ok()) {
      return s;
    }
    return mode;
  }
  if (absl::Status s = CublasStatus(cublasSsyrk(ctx.cublas(), CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, n, k,
                                                &alpha, x.data(), n, &beta, h.data(), n),
                                    absl::StrCat("cublasSsyrk H[", n, "x", n, "] += xᵀx, k=", k));
      !s.ok()) {
    return s;
  }
  return mode;
}

absl::Status MirrorLowerToUpper(CudaContext& ctx, DeviceMatrix<float>& h) {
  constexpr const char* kOp = "cuda::MirrorLowerToUpper";
  if (absl::Status s = CheckMatrix(h, h.rows, h.rows, kOp, "h"); !s.ok()) return s;
  if (h.rows == 0) return absl::OkStatus();
  const int64_t tiles = (h.rows + kTile - 1) / kTile;
  if (tiles > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": ", h.rows, " rows exceed one launch"));
  }
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(tiles));
  MirrorLowerToUpperKernel<<<grid, dim3(kTile, 8), 0, ctx.stream()>>>(h.data(), h.rows);
  return LaunchStatus("MirrorLowerToUpperKernel");
}

absl::StatusOr<DeviceHessianAccumulator> DeviceHessianAccumulator::Create(CudaContext& ctx, int in_features,
                                                                          const MatmulOptions& options) {
  if (in_features < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("DeviceHessianAccumulator: in_features must be >= 0, got ", in_features));
  }
  absl::StatusOr<DeviceMatrix<float>> h = DeviceMatrix<float>::Allocate(in_features, in_features);
  if (!h.ok()) return h.status();
  if (absl::Status s = h->buffer.SetZero(ctx.stream()); !s.ok()) return s;
  DeviceHessianAccumulator acc;
  acc.ctx_ = &ctx;
  acc.options_ = options;
  acc.h_ = *std::move(h);
  return acc;
}

absl::Status DeviceHessianAccumulator::AddBatch(const DeviceMatrix<float>& x, int num_sequences) {
  constexpr const char* kOp = "DeviceHessianAccumulator::AddBatch";
  if (absl::Status s = CheckMatrix(x, -1, h_.rows, kOp, "x"); !s.ok()) return s;
  if (num_sequences < 1) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": num_sequences must be >= 1, got ", num_sequences));
  }
  const double beta = static_cast<double>(nsamples_) / static_cast<double>(nsamples_ + num_sequences);
  const double alpha = 2.0 / static_cast<double>(nsamples_ + num_sequences);
  absl::StatusOr<MathMode> mode = SymmetricRankKUpdate(*ctx_, x, static_cast<float>(alpha),
                                                       static_cast<float>(beta), h_, options_);
  if (!mode.ok()) return mode.status();
  if (*mode == MathMode::kTf32 && x.rows > 0) mode_ = MathMode::kTf32;
  nsamples_ += num_sequences;
  tokens_ += x.rows;
  return absl::OkStatus();
}

absl::StatusOr<DeviceMatrix<float>> DeviceHessianAccumulator::Finalize() const {
  absl::StatusOr<DeviceMatrix<float>> full = DeviceMatrix<float>::Allocate(h_.rows, h_.cols);
  if (!full.ok()) return full.status();
  if (absl::Status s = full->buffer.CopyFrom(h_.buffer, ctx_->stream()); !s.ok()) return s;
  if (absl::Status s = MirrorLowerToUpper(*ctx_, *full); !s.ok()) return s;
  return full;
}

}  // namespace caliber::cuda
