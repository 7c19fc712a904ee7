#include "core/cuda/silu_mul.h"

#include "core/cuda/kernel_util.cuh"

namespace caliber::cuda {
namespace {

__global__ void SiluMulKernel(float* gate, const float* up, int64_t n) {
  for (int64_t i = kernel::GlobalThread(); i < n; i += kernel::GlobalStride()) {
    const float g = gate[i];
    gate[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[i]);
  }
}

}  // namespace

absl::Status SiluMul(CudaContext& ctx, DeviceMatrix<float>& gate, const DeviceMatrix<float>& up) {
  constexpr const char* kOp = "cuda::SiluMul";
  if (absl::Status s = CheckMatrix(gate, -1, -1, kOp, "gate"); !s.ok()) return s;
  if (absl::Status s = CheckMatrix(up, gate.rows, gate.cols, kOp, "up"); !s.ok()) return s;
  const int64_t n = gate.size();
  if (n == 0) return absl::OkStatus();
  SiluMulKernel<<<kernel::BlocksFor(n), kernel::kThreads, 0, ctx.stream()>>>(gate.data(), up.data(), n);
  return LaunchStatus("SiluMulKernel");
}

}  // namespace caliber::cuda
