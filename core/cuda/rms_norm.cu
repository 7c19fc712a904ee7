#include "core/cuda/rms_norm.h"

#include "core/cuda/kernel_util.cuh"

namespace caliber::cuda {
namespace {

// One block per (row, chunk).
__global__ void RmsNormKernel(const float* x, const float* weight, float eps, int64_t width,
                              float* y) {
  const int64_t base = static_cast<int64_t>(blockIdx.x) * width;  // row * cols + chunk * width
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    const float v = x[base + i];
    sum = __fadd_rn(sum, __fmul_rn(v, v));
  }
  sum = kernel::BlockReduce(sum, kernel::SumOp{}, 0.0f);
  // core: inv = 1 / sqrt(mean_sq + eps); y = x * inv * weight, each step rounded.
  const float mean_sq = __fdiv_rn(sum, static_cast<float>(width));
  const float inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean_sq, eps)));
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    y[base + i] = __fmul_rn(__fmul_rn(x[base + i], inv), weight[i]);
  }
}

}  // namespace

absl::Status RmsNorm(CudaContext& ctx, const DeviceMatrix<float>& x, const DeviceBuffer<float>& weight,
                     float eps, DeviceMatrix<float>& y) {
  constexpr const char* kOp = "cuda::RmsNorm";
  if (absl::Status s = CheckMatrix(x, -1, -1, kOp, "x"); !s.ok()) return s;
  if (absl::Status s = CheckMatrix(y, x.rows, x.cols, kOp, "y"); !s.ok()) return s;
  const int64_t width = static_cast<int64_t>(weight.size());
  if (width == 0 || x.cols % width != 0) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": x has ", x.cols,
                                                   " columns, not a multiple of the weight width ", width));
  }
  const int64_t chunks = x.cols / width;
  const int64_t blocks = x.rows * chunks;
  if (blocks == 0) return absl::OkStatus();
  if (blocks > 0x7fffffffLL) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": ", blocks, " row chunks exceed one launch"));
  }
  const int threads = width <= 512 ? 128 : 256;
  RmsNormKernel<<<static_cast<unsigned>(blocks), threads, 0, ctx.stream()>>>(
      x.data(), weight.data(), eps, width, y.data());
  return LaunchStatus("RmsNormKernel");
}

}  // namespace caliber::cuda
