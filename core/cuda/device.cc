#include "core/cuda/device.h"

#include <cuda_runtime_api.h>

#include "absl/strings/str_cat.h"

namespace caliber::cuda {

absl::Status CudaStatus(int error, const char* what) {
  if (error == cudaSuccess) return absl::OkStatus();
  const auto e = static_cast<cudaError_t>(error);
  const std::string msg = absl::StrCat(what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) return absl::FailedPreconditionError(msg);
  return absl::InternalError(msg);
}

int DeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
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
