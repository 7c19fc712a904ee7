#include "core/cuda/cholesky.h"

#include <cusolverDn.h>

#include <climits>
#include <type_traits>

#include "absl/strings/str_format.h"
#include "core/cuda/blas_status.h"
#include "core/cuda/kernel_util.cuh"

namespace caliber::cuda {
namespace {

// Row-major kUpper is the column-major lower triangle of the same buffer, and vice versa.
cublasFillMode_t ColumnMajorFill(Triangle t) {
  return t == Triangle::kUpper ? CUBLAS_FILL_MODE_LOWER : CUBLAS_FILL_MODE_UPPER;
}

template <typename T>
__global__ void ZeroStrictlyLowerKernel(T* a, int64_t n) {
  const int64_t total = n * n;
  for (int64_t i = kernel::GlobalThread(); i < total; i += kernel::GlobalStride()) {
    if (i / n > i % n) a[i] = T(0);
  }
}

template <typename T>
absl::Status CheckSquare(const DeviceMatrix<T>& a, const char* op) {
  if (absl::Status s = CheckMatrix(a, a.rows, a.rows, op, "matrix"); !s.ok()) return s;
  if (a.rows > INT_MAX) return absl::InvalidArgumentError(absl::StrCat(op, ": ", a.rows, " rows exceed int32"));
  return absl::OkStatus();
}

// The solver's devInfo, read back (this waits for the stream).
absl::StatusOr<int> ReadInfo(CudaContext& ctx, const DeviceBuffer<int>& info) {
  int host = 0;
  if (absl::Status s = info.CopyToHost(absl::MakeSpan(&host, 1), ctx.stream()); !s.ok()) return s;
  return host;
}

enum class Routine { kPotrf, kPotri };

template <typename T>
absl::Status RunSolver(CudaContext& ctx, DeviceMatrix<T>& a, Triangle triangle, Routine routine,
                       const char* what) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  const char* name = routine == Routine::kPotrf ? (std::is_same_v<T, float> ? "cusolverDnSpotrf" : "cusolverDnDpotrf")
                                                : (std::is_same_v<T, float> ? "cusolverDnSpotri" : "cusolverDnDpotri");
  if (absl::Status s = CheckSquare(a, name); !s.ok()) return s;
  const int n = static_cast<int>(a.rows);
  if (n == 0) return absl::OkStatus();
  const cublasFillMode_t fill = ColumnMajorFill(triangle);
  cusolverDnHandle_t handle = ctx.cusolver();
  int lwork = 0;
  cusolverStatus_t st;
  if constexpr (std::is_same_v<T, float>) {
    st = routine == Routine::kPotrf ? cusolverDnSpotrf_bufferSize(handle, fill, n, a.data(), n, &lwork)
                                    : cusolverDnSpotri_bufferSize(handle, fill, n, a.data(), n, &lwork);
  } else {
    st = routine == Routine::kPotrf ? cusolverDnDpotrf_bufferSize(handle, fill, n, a.data(), n, &lwork)
                                    : cusolverDnDpotri_bufferSize(handle, fill, n, a.data(), n, &lwork);
  }
  if (absl::Status s = CusolverStatus(st, absl::StrCat(name, "_bufferSize")); !s.ok()) return s;
  absl::StatusOr<DeviceBuffer<T>> work = DeviceBuffer<T>::Allocate(static_cast<size_t>(lwork > 0 ? lwork : 1));
  if (!work.ok()) return work.status();
  absl::StatusOr<DeviceBuffer<int>> info = DeviceBuffer<int>::Allocate(1);
  if (!info.ok()) return info.status();
  if constexpr (std::is_same_v<T, float>) {
    st = routine == Routine::kPotrf
             ? cusolverDnSpotrf(handle, fill, n, a.data(), n, work->data(), lwork, info->data())
             : cusolverDnSpotri(handle, fill, n, a.data(), n, work->data(), lwork, info->data());
  } else {
    st = routine == Routine::kPotrf
             ? cusolverDnDpotrf(handle, fill, n, a.data(), n, work->data(), lwork, info->data())
             : cusolverDnDpotri(handle, fill, n, a.data(), n, work->data(), lwork, info->data());
  }
  if (absl::Status s = CusolverStatus(st, absl::StrCat(name, " n=", n)); !s.ok()) return s;
  absl::StatusOr<int> code = ReadInfo(ctx, *info);
  if (!code.ok()) return code.status();
  if (*code < 0) {
    return absl::InternalError(absl::StrFormat("%s: parameter %d had an illegal value", name, -*code));
  }
  if (*code > 0) {
    return routine == Routine::kPotrf
               ? absl::FailedPreconditionError(absl::StrFormat(
                     "%s failed: leading minor of order %d is not positive definite (%s)", what, *code, name))
               : absl::FailedPreconditionError(absl::StrFormat(
                     "%s failed: its Cholesky factor has a zero at %d (%s)", what, *code, name));
  }
  return absl::OkStatus();
}

}  // namespace

template <typename T>
absl::Status Cholesky(CudaContext& ctx, DeviceMatrix<T>& a, Triangle triangle) {
  return RunSolver(ctx, a, triangle, Routine::kPotrf, "Cholesky");
}

template <typename T>
absl::Status CholeskyInverse(CudaContext& ctx, DeviceMatrix<T>& factor, Triangle triangle) {
  return RunSolver(ctx, factor, triangle, Routine::kPotri, "Cholesky inverse");
}

template <typename T>
absl::Status UpperCholeskyOfInverse(CudaContext& ctx, DeviceMatrix<T>& h) {
  // core: column-major 'L' potrf, potri, potrf — the row-major upper triangle throughout.
  if (absl::Status s = RunSolver(ctx, h, Triangle::kUpper, Routine::kPotrf, "Cholesky of H"); !s.ok()) {
    return s;
  }
  if (absl::Status s = RunSolver(ctx, h, Triangle::kUpper, Routine::kPotri, "inverse of H"); !s.ok()) {
    return s;
  }
  if (absl::Status s = RunSolver(ctx, h, Triangle::kUpper, Routine::kPotrf, "Cholesky of H^-1"); !s.ok()) {
    return s;
  }
  if (h.rows == 0) return absl::OkStatus();
  ZeroStrictlyLowerKernel<T><<<kernel::BlocksFor(h.size()), kernel::kThreads, 0, ctx.stream()>>>(h.data(), h.rows);
  return LaunchStatus("ZeroStrictlyLowerKernel");
}

template absl::Status Cholesky<float>(CudaContext&, DeviceMatrix<float>&, Triangle);
template absl::Status Cholesky<double>(CudaContext&, DeviceMatrix<double>&, Triangle);
template absl::Status CholeskyInverse<float>(CudaContext&, DeviceMatrix<float>&, Triangle);
template absl::Status CholeskyInverse<double>(CudaContext&, DeviceMatrix<double>&, Triangle);
template absl::Status UpperCholeskyOfInverse<float>(CudaContext&, DeviceMatrix<float>&);
template absl::Status UpperCholeskyOfInverse<double>(CudaContext&, DeviceMatrix<double>&);

}  // namespace caliber::cuda
