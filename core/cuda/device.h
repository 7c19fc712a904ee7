// CUDA device discovery and error translation. Every CUDA runtime error becomes an
// absl::Status naming the call; no device (or no driver) is FailedPrecondition.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace caliber::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  size_t total_memory = 0;
};

// Number of usable devices; 0 when there is no driver or no GPU (not an error).
int DeviceCount();
absl::StatusOr<DeviceInfo> GetDeviceInfo(int index);

// Converts a cudaError_t (passed as int to keep CUDA headers out of this header).
absl::Status CudaStatus(int error, const char* what);

}  // namespace caliber::cuda
