// Round-to-nearest on per-group affine grids on the device, as core's RTN (core/quant/rtn.h)
// on quant.py's grid (core/quant/quant_grid.h): per group g of `group_size` input columns and
// output row r, code = clamp(rint(w / scale) + zero, 0, maxq) and q = scale · (code − zero),
// with scales and zeros laid out [num_groups x out] as QuantizedLinear stores them (zeros are
// integers kept in float, as quant.py keeps them). Every step is one correctly rounded float32
// operation, so codes, parameters and dequantized values are bit-identical to core's.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cuda/context.h"
#include "core/cuda/device_matrix.h"

namespace caliber::cuda {

struct DeviceGroupGrid {
  int bits = 4;
  int group_size = 128;       // columns per group as given (-1: one group per row)
  DeviceMatrix<float> scales;  // [num_groups x out]
  DeviceMatrix<float> zeros;   // [num_groups x out]
};

// quant.py find_params (per channel, without the MSE search) for every group of W [out x in]:
// xmin = min(min w, 0), xmax = max(max w, 0); sym: xmax = max(|xmin|, xmax), xmin = −xmax when
// xmin < 0; both zero -> [−1, 1]; scale = (xmax − xmin) / maxq; zero = sym ? (maxq + 1) / 2 :
// rint(−xmin / scale). bits in [1, 8]; group_size −1 or positive (the last group may be shorter).
// The MSE clipping search stays on the host: compute its grid with caliber::FindParams and
// upload it (UploadGroupGrid in core/cuda/host_transfer.h).
absl::StatusOr<DeviceGroupGrid> FindGroupGrid(CudaContext& ctx, const DeviceMatrix<float>& w, int bits,
                                              int group_size, bool sym);

// Quantizes W [out x in] on `grid`: writes the codes [out x in] and/or the dequantized weights
// [out x in] (either pointer may be null; each, when given, must already have that shape).
absl::Status QuantizeWithGrid(CudaContext& ctx, const DeviceMatrix<float>& w, const DeviceGroupGrid& grid,
                              DeviceMatrix<uint8_t>* codes, DeviceMatrix<float>* dequantized);

}  // namespace caliber::cuda
