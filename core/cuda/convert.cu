#include <cuda_runtime.h>

#include "core/cuda/convert.h"
#include "core/cuda/device.h"
#include "core/cuda/kernel_util.cuh"

namespace caliber::cuda {
namespace {

__global__ void Bf16ToFloatKernel(const uint16_t* in, float* out, int64_t n) {
  for (int64_t i = kernel::GlobalThread(); i < n; i += kernel::GlobalStride()) {
    out[i] = __uint_as_float(static_cast<uint32_t>(in[i]) << 16);
  }
}

absl::Status LaunchBf16ToFloat(const uint16_t* in, float* out, size_t n, Stream stream) {
  if (n == 0) return absl::OkStatus();
  const auto count = static_cast<int64_t>(n);
  Bf16ToFloatKernel<<<kernel::BlocksFor(count), kernel::kThreads, 0, stream>>>(in, out, count);
  return LaunchStatus("Bf16ToFloatKernel");
}

}  // namespace

absl::Status Bf16ToFloat(CudaContext& ctx, const DeviceBuffer<uint16_t>& bits, DeviceBuffer<float>& out) {
  if (out.size() != bits.size()) {
    return absl::InvalidArgumentError(absl::StrCat("cuda::Bf16ToFloat: ", bits.size(),
                                                   " inputs but an output of ", out.size()));
  }
  return LaunchBf16ToFloat(bits.data(), out.data(), bits.size(), ctx.stream());
}

absl::StatusOr<std::vector<float>> Bf16ToFloatOnDevice(absl::Span<const uint16_t> bits) {
  if (absl::Status s = RequireDevice(); !s.ok()) return s;
  std::vector<float> host(bits.size());
  if (bits.empty()) return host;
  absl::StatusOr<DeviceBuffer<uint16_t>> in = DeviceBuffer<uint16_t>::FromHost(bits, nullptr);
  if (!in.ok()) return in.status();
  absl::StatusOr<DeviceBuffer<float>> out = DeviceBuffer<float>::Allocate(bits.size());
  if (!out.ok()) return out.status();
  if (absl::Status s = LaunchBf16ToFloat(in->data(), out->data(), bits.size(), nullptr); !s.ok()) return s;
  if (absl::Status s = out->CopyToHost(absl::MakeSpan(host), nullptr); !s.ok()) return s;
  return host;
}

}  // namespace caliber::cuda
