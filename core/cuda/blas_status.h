// cuBLAS and cuSOLVER status codes as absl::Status, naming the call: not initialized (no
// device or driver behind the handle) is FailedPrecondition, allocation failures
// ResourceExhausted, an invalid value InvalidArgument, an unsupported architecture or feature
// Unimplemented, anything else Internal.
#pragma once

#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace caliber::cuda {

// `status` is a cublasStatus_t / cusolverStatus_t, passed as int to keep the library headers
// out of this header.
absl::Status CublasStatus(int status, absl::string_view what);
absl::Status CusolverStatus(int status, absl::string_view what);

}  // namespace caliber::cuda
