#include "core/cuda/host_transfer.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace caliber::cuda {
namespace {

template <typename T, typename M>
absl::StatusOr<DeviceMatrix<T>> UploadMatrix(CudaContext& ctx, const M& m) {
  absl::StatusOr<DeviceMatrix<T>> d = DeviceMatrix<T>::Allocate(m.rows(), m.cols());
  if (!d.ok()) return d.status();
  if (absl::Status s = d->buffer.CopyFromHost(absl::MakeConstSpan(m.data(), static_cast<size_t>(m.size())),
                                              ctx.stream());
      !s.ok()) {
    return s;
  }
  return d;
}

template <typename M, typename T>
absl::StatusOr<M> DownloadMatrix(CudaContext& ctx, const DeviceMatrix<T>& d) {
  if (absl::Status s = CheckMatrix(d, -1, -1, "cuda::Download", "matrix"); !s.ok()) return s;
  M m(d.rows, d.cols);
  if (absl::Status s = d.buffer.CopyToHost(absl::MakeSpan(m.data(), static_cast<size_t>(m.size())), ctx.stream());
      !s.ok()) {
    return s;
  }
  return m;
}

}  // namespace

absl::StatusOr<DeviceMatrix<float>> Upload(CudaContext& ctx, const MatrixF& m) {
  return UploadMatrix<float>(ctx, m);
}
absl::StatusOr<DeviceMatrix<double>> Upload(CudaContext& ctx, const MatrixD& m) {
  return UploadMatrix<double>(ctx, m);
}
absl::StatusOr<DeviceBuffer<float>> Upload(CudaContext& ctx, const VectorF& v) {
  return DeviceBuffer<float>::FromHost(absl::MakeConstSpan(v.data(), static_cast<size_t>(v.size())), ctx.stream());
}

absl::StatusOr<MatrixF> Download(CudaContext& ctx, const DeviceMatrix<float>& m) {
  return DownloadMatrix<MatrixF>(ctx, m);
}
absl::StatusOr<MatrixD> Download(CudaContext& ctx, const DeviceMatrix<double>& m) {
  return DownloadMatrix<MatrixD>(ctx, m);
}
absl::StatusOr<CodeMatrix> Download(CudaContext& ctx, const DeviceMatrix<uint8_t>& m) {
  return DownloadMatrix<CodeMatrix>(ctx, m);
}

absl::StatusOr<DeviceRopeTable> UploadRopeTable(CudaContext& ctx, const RopeTable& table) {
  absl::StatusOr<DeviceMatrix<float>> cos = Upload(ctx, table.cos());
  if (!cos.ok()) return cos.status();
  absl::StatusOr<DeviceMatrix<float>> sin = Upload(ctx, table.sin());
  if (!sin.ok()) return sin.status();
  return DeviceRopeTable{*std::move(cos), *std::move(sin)};
}

absl::StatusOr<DeviceGroupGrid> UploadGroupGrid(CudaContext& ctx, const MatrixF& scales, const IntMatrix& zeros,
                                                int bits, int group_size) {
  if (scales.rows() != zeros.rows() || scales.cols() != zeros.cols()) {
    return absl::InvalidArgumentError(absl::StrCat("cuda::UploadGroupGrid: scales ", scales.rows(), "x",
                                                   scales.cols(), " but zeros ", zeros.rows(), "x", zeros.cols()));
  }
  const MatrixF zeros_f = zeros.cast<float>();
  absl::StatusOr<DeviceMatrix<float>> s = Upload(ctx, scales);
  if (!s.ok()) return s.status();
  absl::StatusOr<DeviceMatrix<float>> z = Upload(ctx, zeros_f);
  if (!z.ok()) return z.status();
  // zeros_f is pageable host memory: the copy has been staged by the time Upload returns.
  return DeviceGroupGrid{bits, group_size, *std::move(s), *std::move(z)};
}

}  // namespace caliber::cuda
