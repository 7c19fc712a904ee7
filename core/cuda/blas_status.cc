#include "core/cuda/blas_status.h"

#include <cublas_api.h>
#include <cusolver_common.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace caliber::cuda {
namespace {

absl::Status ByKind(absl::StatusCode code, absl::string_view what, absl::string_view name) {
  return absl::Status(code, absl::StrCat(what, ": ", name));
}

const char* CusolverName(cusolverStatus_t s) {
  switch (s) {
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_MAPPING_ERROR: return "CUSOLVER_STATUS_MAPPING_ERROR";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_ZERO_PIVOT: return "CUSOLVER_STATUS_ZERO_PIVOT";
    case CUSOLVER_STATUS_INVALID_LICENSE: return "CUSOLVER_STATUS_INVALID_LICENSE";
    case CUSOLVER_STATUS_INVALID_WORKSPACE: return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default: return "cusolverStatus_t";
  }
}

}  // namespace

absl::Status CublasStatus(int status, absl::string_view what) {
  const auto s = static_cast<cublasStatus_t>(status);
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const std::string name = absl::StrCat(cublasGetStatusName(s), " (", cublasGetStatusString(s), ")");
  switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return ByKind(absl::StatusCode::kFailedPrecondition, what, name);
    case CUBLAS_STATUS_ALLOC_FAILED:
      return ByKind(absl::StatusCode::kResourceExhausted, what, name);
    case CUBLAS_STATUS_INVALID_VALUE:
      return ByKind(absl::StatusCode::kInvalidArgument, what, name);
    case CUBLAS_STATUS_ARCH_MISMATCH:
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return ByKind(absl::StatusCode::kUnimplemented, what, name);
    default:
      return ByKind(absl::StatusCode::kInternal, what, name);
  }
}

absl::Status CusolverStatus(int status, absl::string_view what) {
  const auto s = static_cast<cusolverStatus_t>(status);
  if (s == CUSOLVER_STATUS_SUCCESS) return absl::OkStatus();
  const std::string name = absl::StrCat(CusolverName(s), " (", status, ")");
  switch (s) {
    case CUSOLVER_STATUS_NOT_INITIALIZED:
      return ByKind(absl::StatusCode::kFailedPrecondition, what, name);
    case CUSOLVER_STATUS_ALLOC_FAILED:
      return ByKind(absl::StatusCode::kResourceExhausted, what, name);
    case CUSOLVER_STATUS_INVALID_VALUE:
      return ByKind(absl::StatusCode::kInvalidArgument, what, name);
    case CUSOLVER_STATUS_ARCH_MISMATCH:
    case CUSOLVER_STATUS_NOT_SUPPORTED:
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED:
      return ByKind(absl::StatusCode::kUnimplemented, what, name);
    default:
      return ByKind(absl::StatusCode::kInternal, what, name);
  }
}

}  // namespace caliber::cuda
