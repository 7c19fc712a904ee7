// DeviceBuffer<T>: an owned, typed block of device memory (cudaMalloc / cudaFree), with
// host <-> device copies enqueued on a stream. Move-only; an empty buffer owns nothing.
// Allocation checks for a usable device first, so without one it is FailedPrecondition.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

struct CUstream_st;

namespace caliber::cuda {

// A cudaStream_t (the same type, without the CUDA headers); nullptr is the legacy default
// stream.
using Stream = CUstream_st*;

namespace internal {
absl::StatusOr<void*> DeviceAllocate(size_t bytes);
void DeviceRelease(void* ptr);
absl::Status CopyHostToDevice(void* dst, const void* src, size_t bytes, Stream stream);
// Waits for the stream, so `dst` holds the data (and earlier errors surface) on return.
absl::Status CopyDeviceToHost(void* dst, const void* src, size_t bytes, Stream stream);
absl::Status CopyDeviceToDevice(void* dst, const void* src, size_t bytes, Stream stream);
absl::Status ZeroDeviceBytes(void* dst, size_t bytes, Stream stream);
}  // namespace internal

template <typename T>
class DeviceBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "device buffers hold plain data");

 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { internal::DeviceRelease(data_); }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      internal::DeviceRelease(data_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // `count` uninitialized elements.
  static absl::StatusOr<DeviceBuffer> Allocate(size_t count) {
    if (count > SIZE_MAX / sizeof(T)) {
      return absl::InvalidArgumentError(absl::StrCat("DeviceBuffer: ", count, " elements overflow size_t"));
    }
    absl::StatusOr<void*> p = internal::DeviceAllocate(count * sizeof(T));
    if (!p.ok()) return p.status();
    DeviceBuffer b;
    b.data_ = static_cast<T*>(*p);
    b.size_ = count;
    return b;
  }
  // A device copy of `host` (enqueued on `stream`; `host` may be reused on return).
  static absl::StatusOr<DeviceBuffer> FromHost(absl::Span<const T> host, Stream stream) {
    absl::StatusOr<DeviceBuffer> b = Allocate(host.size());
    if (!b.ok()) return b.status();
    if (absl::Status s = b->CopyFromHost(host, stream); !s.ok()) return s;
    return b;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }
  bool empty() const { return size_ == 0; }

  // host.size() must equal size().
  absl::Status CopyFromHost(absl::Span<const T> host, Stream stream) {
    if (host.size() != size_) return SizeMismatch("CopyFromHost", host.size());
    return internal::CopyHostToDevice(data_, host.data(), bytes(), stream);
  }
  // host.size() must equal size(); waits for `stream`.
  absl::Status CopyToHost(absl::Span<T> host, Stream stream) const {
    if (host.size() != size_) return SizeMismatch("CopyToHost", host.size());
    return internal::CopyDeviceToHost(host.data(), data_, bytes(), stream);
  }
  absl::StatusOr<std::vector<T>> ToHost(Stream stream) const {
    std::vector<T> host(size_);
    if (absl::Status s = CopyToHost(absl::MakeSpan(host), stream); !s.ok()) return s;
    return host;
  }
  // other.size() must equal size().
  absl::Status CopyFrom(const DeviceBuffer& other, Stream stream) {
    if (other.size_ != size_) return SizeMismatch("CopyFrom", other.size_);
    return internal::CopyDeviceToDevice(data_, other.data_, bytes(), stream);
  }
  absl::Status SetZero(Stream stream) { return internal::ZeroDeviceBytes(data_, bytes(), stream); }

 private:
  absl::Status SizeMismatch(const char* op, size_t got) const {
    return absl::InvalidArgumentError(
        absl::StrCat("DeviceBuffer::", op, ": ", got, " elements for a buffer of ", size_));
  }

  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace caliber::cuda
