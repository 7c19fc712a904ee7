// DeviceMatrix<T>: a row-major [rows x cols] matrix in device memory, stored as the engine
// stores host matrices (core/tensor/matrix.h): a linear weight W [out x in], activations
// X [tokens x features]. Plain data: the buffer plus its shape.
#pragma once

#include <cstdint>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/cuda/device_buffer.h"

namespace caliber::cuda {

template <typename T>
struct DeviceMatrix {
  DeviceBuffer<T> buffer;
  int64_t rows = 0;
  int64_t cols = 0;

  static absl::StatusOr<DeviceMatrix> Allocate(int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("DeviceMatrix: negative shape ", rows, "x", cols));
    }
    absl::StatusOr<DeviceBuffer<T>> b =
        DeviceBuffer<T>::Allocate(static_cast<size_t>(rows) * static_cast<size_t>(cols));
    if (!b.ok()) return b.status();
    return DeviceMatrix{*std::move(b), rows, cols};
  }

  T* data() { return buffer.data(); }
  const T* data() const { return buffer.data(); }
  int64_t size() const { return rows * cols; }
};

// OK when `m` is a consistent [rows x cols] matrix (a negative rows/cols accepts any extent);
// InvalidArgument naming `op` and `name` otherwise.
template <typename T>
absl::Status CheckMatrix(const DeviceMatrix<T>& m, int64_t rows, int64_t cols, absl::string_view op,
                         absl::string_view name) {
  if (m.rows < 0 || m.cols < 0 || m.buffer.size() != static_cast<size_t>(m.rows * m.cols)) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": ", name, " is ", m.rows, "x", m.cols,
                                                   " but holds ", m.buffer.size(), " elements"));
  }
  if ((rows >= 0 && m.rows != rows) || (cols >= 0 && m.cols != cols)) {
    return absl::InvalidArgumentError(absl::StrCat(
        op, ": ", name, " is ", m.rows, "x", m.cols, ", expected ", rows < 0 ? "*" : absl::StrCat(rows),
        "x", cols < 0 ? "*" : absl::StrCat(cols)));
  }
  return absl::OkStatus();
}

}  // namespace caliber::cuda
