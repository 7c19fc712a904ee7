// Moving core's host types to the device and back: row-major Eigen matrices (core/tensor/
// matrix.h) to DeviceMatrix and back without reordering, core's RoPE table, and RTN grids in
// QuantizedLinear's layout. Uploads are enqueued on ctx's stream (the host data may be reused on
// return); downloads wait for the stream.
#pragma once

#include "absl/status/statusor.h"
#include "core/cuda/context.h"
#include "core/cuda/device_matrix.h"
#include "core/cuda/rope.h"
#include "core/cuda/rtn.h"
#include "core/model/rope.h"
#include "core/quant/quantized_linear.h"
#include "core/tensor/matrix.h"

namespace caliber::cuda {

absl::StatusOr<DeviceMatrix<float>> Upload(CudaContext& ctx, const MatrixF& m);
absl::StatusOr<DeviceMatrix<double>> Upload(CudaContext& ctx, const MatrixD& m);
absl::StatusOr<DeviceBuffer<float>> Upload(CudaContext& ctx, const VectorF& v);

absl::StatusOr<MatrixF> Download(CudaContext& ctx, const DeviceMatrix<float>& m);
absl::StatusOr<MatrixD> Download(CudaContext& ctx, const DeviceMatrix<double>& m);
absl::StatusOr<CodeMatrix> Download(CudaContext& ctx, const DeviceMatrix<uint8_t>& m);

// core's cos/sin table as is (bit-identical values).
absl::StatusOr<DeviceRopeTable> UploadRopeTable(CudaContext& ctx, const RopeTable& table);

// A grid in QuantizedLinear's layout: scales and integer zeros [num_groups x out].
absl::StatusOr<DeviceGroupGrid> UploadGroupGrid(CudaContext& ctx, const MatrixF& scales, const IntMatrix& zeros,
                                                int bits, int group_size);

}  // namespace caliber::cuda
