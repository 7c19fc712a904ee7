// CudaContext: what every device op runs on — one device, one non-blocking stream, and the
// cuBLAS and cuSOLVER handles bound to that stream. Ops enqueue work on the stream and return
// once it is launched; Synchronize() (or any copy to the host) waits for it and surfaces
// errors raised while kernels ran. Create() makes the device current on the calling thread;
// use a context from one thread at a time, with that device current.
#pragma once

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cuda/device.h"
#include "core/cuda/device_buffer.h"

struct cublasContext;      // cublasHandle_t is cublasContext*
struct cusolverDnContext;  // cusolverDnHandle_t is cusolverDnContext*

namespace caliber::cuda {

class CudaContext {
 public:
  // FailedPrecondition without a usable device (or when `device` does not exist).
  static absl::StatusOr<std::unique_ptr<CudaContext>> Create(int device = 0);
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  const DeviceInfo& device() const { return device_; }
  Stream stream() const { return stream_; }
  cublasContext* cublas() const { return cublas_; }
  cusolverDnContext* cusolver() const { return cusolver_; }

  // Waits for everything enqueued on the stream.
  absl::Status Synchronize() const;

 private:
  CudaContext() = default;

  DeviceInfo device_;
  Stream stream_ = nullptr;
  cublasContext* cublas_ = nullptr;
  cusolverDnContext* cusolver_ = nullptr;
};

}  // namespace caliber::cuda
