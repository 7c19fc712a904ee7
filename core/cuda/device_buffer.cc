#include "core/cuda/device_buffer.h"

#include <cuda_runtime_api.h>

#include "core/cuda/device.h"

namespace caliber::cuda::internal {

absl::StatusOr<void*> DeviceAllocate(size_t bytes) {
  if (absl::Status s = RequireDevice(); !s.ok()) return s;
  if (bytes == 0) return static_cast<void*>(nullptr);
  void* p = nullptr;
  if (absl::Status s = CudaStatus(cudaMalloc(&p, bytes), absl::StrCat("cudaMalloc(", bytes, " bytes)"));
      !s.ok()) {
    cudaGetLastError();  // an allocation failure is not sticky; keep the thread's error clean
    return s;
  }
  return p;
}

void DeviceRelease(void* ptr) {
  if (ptr == nullptr) return;
  if (cudaFree(ptr) != cudaSuccess) cudaGetLastError();  // nothing to report from a destructor
}

absl::Status CopyHostToDevice(void* dst, const void* src, size_t bytes, Stream stream) {
  if (bytes == 0) return absl::OkStatus();
  return CudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream),
                    absl::StrCat("cudaMemcpyAsync host->device (", bytes, " bytes)"));
}

absl::Status CopyDeviceToHost(void* dst, const void* src, size_t bytes, Stream stream) {
  if (bytes > 0) {
    if (absl::Status s = CudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream),
                                    absl::StrCat("cudaMemcpyAsync device->host (", bytes, " bytes)"));
        !s.ok()) {
      return s;
    }
  }
  return CudaStatus(cudaStreamSynchronize(stream), "cudaStreamSynchronize after device->host copy");
}

absl::Status CopyDeviceToDevice(void* dst, const void* src, size_t bytes, Stream stream) {
  if (bytes == 0) return absl::OkStatus();
  return CudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream),
                    absl::StrCat("cudaMemcpyAsync device->device (", bytes, " bytes)"));
}

absl::Status ZeroDeviceBytes(void* dst, size_t bytes, Stream stream) {
  if (bytes == 0) return absl::OkStatus();
  return CudaStatus(cudaMemsetAsync(dst, 0, bytes, stream),
                    absl::StrCat("cudaMemsetAsync (", bytes, " bytes)"));
}

}  // namespace caliber::cuda::internal
