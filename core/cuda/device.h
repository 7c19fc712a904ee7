// CUDA device discovery and error translation. Every CUDA runtime error becomes an
// absl::Status naming the call; no usable device (no GPU, no driver, devices hidden) is
// FailedPrecondition, busy devices (exclusive mode) Unavailable, out of memory
// ResourceExhausted, anything else Internal.
#pragma once

#include <cstddef>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
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

// OK when at least one device is usable; otherwise FailedPrecondition saying why (the CUDA
// error of cudaGetDeviceCount, or that it found none). Every entry point calls it first.
absl::Status RequireDevice();

// Converts a cudaError_t (passed as int to keep CUDA headers out of this header).
absl::Status CudaStatus(int error, absl::string_view what);

// The launch status of the kernel just launched on this thread (cudaGetLastError), naming it.
// Errors while the kernel runs surface later, at the next synchronizing call.
absl::Status LaunchStatus(absl::string_view kernel);

}  // namespace caliber::cuda
