#include <cuda_runtime.h>

#include "core/cuda/convert.h"
#include "core/cuda/device.h"

namespace caliber::cuda {
namespace {

__global__ void Bf16ToFloatKernel(const uint16_t* in, float* out, size_t n) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = __uint_as_float(static_cast<uint32_t>(in[i]) << 16);
}

// Frees device buffers however the function exits.
struct DeviceBuffers {
  void* in = nullptr;
  void* out = nullptr;
  ~DeviceBuffers() {
    cudaFree(in);
    cudaFree(out);
  }
};

}  // namespace

absl::StatusOr<std::vector<float>> Bf16ToFloatOnDevice(absl::Span<const uint16_t> bits) {
  if (DeviceCount() == 0) return absl::FailedPreconditionError("no CUDA device available");
  std::vector<float> host(bits.size());
  if (bits.empty()) return host;
  DeviceBuffers buf;
  if (auto s = CudaStatus(cudaMalloc(&buf.in, bits.size() * sizeof(uint16_t)), "cudaMalloc"); !s.ok()) return s;
  if (auto s = CudaStatus(cudaMalloc(&buf.out, bits.size() * sizeof(float)), "cudaMalloc"); !s.ok()) return s;
  if (auto s = CudaStatus(cudaMemcpy(buf.in, bits.data(), bits.size() * sizeof(uint16_t),
                                     cudaMemcpyHostToDevice), "cudaMemcpy H2D"); !s.ok()) return s;
  constexpr int kThreads = 256;
  const unsigned blocks = static_cast<unsigned>((bits.size() + kThreads - 1) / kThreads);
  Bf16ToFloatKernel<<<blocks, kThreads>>>(static_cast<const uint16_t*>(buf.in),
                                          static_cast<float*>(buf.out), bits.size());
  if (auto s = CudaStatus(cudaGetLastError(), "Bf16ToFloatKernel launch"); !s.ok()) return s;
  if (auto s = CudaStatus(cudaMemcpy(host.data(), buf.out, host.size() * sizeof(float),
                                     cudaMemcpyDeviceToHost), "cudaMemcpy D2H"); !s.ok()) return s;
  return host;
}

}  // namespace caliber::cuda
