#include "core/cuda/device.h"

#include <cuda_runtime_api.h>

#include "absl/strings/str_cat.h"

namespace caliber::cuda {

absl::Status CudaStatus(int error, absl::string_view what) {
  if (error == cudaSuccess) return absl::OkStatus();
  const auto e = static_cast<cudaError_t>(error);
  const std::string msg = absl::StrCat(what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
  switch (e) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorInitializationError:
      return absl::FailedPreconditionError(msg);
    case cudaErrorDevicesUnavailable:
      return absl::UnavailableError(msg);
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

int DeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

absl::Status RequireDevice() {
  int count = 0;
  if (const cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess) {
    cudaGetLastError();
    return absl::FailedPreconditionError(absl::StrCat(
        "no usable CUDA device: cudaGetDeviceCount: ", cudaGetErrorName(e), " (",
        cudaGetErrorString(e), ")"));
  }
  if (count == 0) return absl::FailedPreconditionError("no usable CUDA device: none found");
  return absl::OkStatus();
}

absl::Status LaunchStatus(absl::string_view kernel) {
  return CudaStatus(cudaGetLastError(), absl::StrCat(kernel, " launch"));
}

absl::StatusOr<DeviceInfo> GetDeviceInfo(int index) {
  const int count = DeviceCount();
  if (index < 0 || index >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat("CUDA device ", index, " requested but ", count, " device(s) available"));
  }
  cudaDeviceProp prop{};
  if (absl::Status s = CudaStatus(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties");
      !s.ok()) {
    return s;
  }
  return DeviceInfo{index, prop.name, prop.major, prop.minor, prop.totalGlobalMem};
}

}  // namespace caliber::cuda
