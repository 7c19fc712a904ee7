#include "core/cuda/context.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include "core/cuda/blas_status.h"

namespace caliber::cuda {

absl::StatusOr<std::unique_ptr<CudaContext>> CudaContext::Create(int device) {
  if (absl::Status s = RequireDevice(); !s.ok()) return s;
  absl::StatusOr<DeviceInfo> info = GetDeviceInfo(device);
  if (!info.ok()) return info.status();
  std::unique_ptr<CudaContext> ctx(new CudaContext());
  ctx->device_ = *std::move(info);
  if (absl::Status s = CudaStatus(cudaSetDevice(device), "cudaSetDevice"); !s.ok()) return s;
  cudaStream_t stream = nullptr;
  if (absl::Status s = CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
                                  "cudaStreamCreateWithFlags");
      !s.ok()) {
    return s;
  }
  ctx->stream_ = stream;
  cublasHandle_t blas = nullptr;
  if (absl::Status s = CublasStatus(cublasCreate(&blas), "cublasCreate"); !s.ok()) return s;
  ctx->cublas_ = blas;
  if (absl::Status s = CublasStatus(cublasSetStream(blas, stream), "cublasSetStream"); !s.ok()) {
    return s;
  }
  cusolverDnHandle_t solver = nullptr;
  if (absl::Status s = CusolverStatus(cusolverDnCreate(&solver), "cusolverDnCreate"); !s.ok()) {
    return s;
  }
  ctx->cusolver_ = solver;
  if (absl::Status s = CusolverStatus(cusolverDnSetStream(solver, stream), "cusolverDnSetStream");
      !s.ok()) {
    return s;
  }
  return ctx;
}

CudaContext::~CudaContext() {
  // Teardown errors (e.g. a device lost mid-run) have no one to report to.
  if (cusolver_ != nullptr) cusolverDnDestroy(cusolver_);
  if (cublas_ != nullptr) cublasDestroy(cublas_);
  if (stream_ != nullptr) {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
  cudaGetLastError();
}

absl::Status CudaContext::Synchronize() const {
  return CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

}  // namespace caliber::cuda
