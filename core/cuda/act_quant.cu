#include "core/cuda/act_quant.h"

#include "core/cuda/kernel_util.cuh"

namespace caliber::cuda {
namespace {

// One block per row.
__global__ void FakeQuantizePerTokenKernel(float* x, int64_t cols, float qmax) {
  float* row = x + static_cast<int64_t>(blockIdx.x) * cols;
  float absmax = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) absmax = kernel::MaxOp{}(absmax, fabsf(row[i]));
  absmax = kernel::BlockReduce(absmax, kernel::MaxOp{}, 0.0f);
  if (absmax == 0.0f) return;  // all zeros: stays zero (uniform across the block)
  const float qmin = -qmax - 1.0f;
  const float scale = __fdiv_rn(absmax, qmax);
  const float inv_scale = __fdiv_rn(qmax, absmax);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    float v = rintf(__fmul_rn(row[i], inv_scale));
    v = v < qmin ? qmin : (qmax < v ? qmax : v);  // std::clamp
    const int q = static_cast<int>(v);            // through an integer: -0.0 becomes +0.0
    row[i] = __fmul_rn(static_cast<float>(q), scale);
  }
}

}  // namespace

absl::Status FakeQuantizePerToken(CudaContext& ctx, DeviceMatrix<float>& x, int bits) {
  constexpr const char* kOp = "cuda::FakeQuantizePerToken";
  if (bits < 2 || bits > 8) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": bits must be in [2, 8], got ", bits));
  }
  if (absl::Status s = CheckMatrix(x, -1, -1, kOp, "x"); !s.ok()) return s;
  if (x.size() == 0) return absl::OkStatus();
  if (x.rows > 0x7fffffffLL) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": ", x.rows, " rows exceed one launch"));
  }
  const int threads = x.cols <= 1024 ? 128 : 256;
  const float qmax = static_cast<float>((1 << (bits - 1)) - 1);
  FakeQuantizePerTokenKernel<<<static_cast<unsigned>(x.rows), threads, 0, ctx.stream()>>>(
      x.data(), x.cols, qmax);
  return LaunchStatus("FakeQuantizePerTokenKernel");
}

}  // namespace caliber::cuda
