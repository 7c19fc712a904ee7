#include "core/cuda/rtn.h"

#include "core/cuda/kernel_util.cuh"

namespace caliber::cuda {
namespace {

// One warp per (group, row): min/max over the group's columns of that row, then lane 0 writes
// the row's parameters at [group, row].
__global__ void FindGroupGridKernel(const float* w, int64_t out, int64_t in, int64_t group,
                                    int64_t num_groups, float maxq, bool sym, float* scales,
                                    float* zeros) {
  const int lane = threadIdx.x & 31;
  const int64_t warps_total = kernel::GlobalStride() / 32;
  for (int64_t item = kernel::GlobalThread() / 32; item < num_groups * out; item += warps_total) {
    const int64_t g = item / out;
    const int64_t r = item - g * out;
    const int64_t begin = g * group;
    const int64_t end = begin + group < in ? begin + group : in;
    float xmin = 0.0f;
    float xmax = 0.0f;
    for (int64_t c = begin + lane; c < end; c += 32) {
      const float v = w[r * in + c];
      xmin = (v < xmin) ? v : xmin;  // std::min(xmin, v)
      xmax = (xmax < v) ? v : xmax;  // std::max(xmax, v)
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float omin = __shfl_xor_sync(0xffffffffu, xmin, offset);
      const float omax = __shfl_xor_sync(0xffffffffu, xmax, offset);
      xmin = (omin < xmin) ? omin : xmin;
      xmax = (xmax < omax) ? omax : xmax;
    }
    if (lane != 0) continue;
    if (sym) {
      const float amin = fabsf(xmin);
      xmax = (amin < xmax) ? xmax : amin;  // std::max(|xmin|, xmax)
      if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) {
      xmin = -1.0f;
      xmax = 1.0f;
    }
    const float scale = __fdiv_rn(__fsub_rn(xmax, xmin), maxq);
    scales[g * out + r] = scale;
    zeros[g * out + r] = sym ? __fdiv_rn(__fadd_rn(maxq, 1.0f), 2.0f) : rintf(__fdiv_rn(-xmin, scale));
  }
}

__global__ void QuantizeWithGridKernel(const float* w, int64_t out, int64_t in, int64_t group,
                                       const float* scales, const float* zeros, float maxq,
                                       uint8_t* codes, float* dequantized) {
  const int64_t n = out * in;
  for (int64_t i = kernel::GlobalThread(); i < n; i += kernel::GlobalStride()) {
    const int64_t r = i / in;
    const int64_t c = i - r * in;
    const int64_t p = (c / group) * out + r;
    const float scale = scales[p];
    const float zero = zeros[p];
    float code = __fadd_rn(rintf(__fdiv_rn(w[i], scale)), zero);
    code = code < 0.0f ? 0.0f : (maxq < code ? maxq : code);  // std::clamp(code, 0, maxq)
    if (codes != nullptr) codes[i] = static_cast<uint8_t>(code);
    if (dequantized != nullptr) dequantized[i] = __fmul_rn(scale, __fsub_rn(code, zero));
  }
}

absl::Status CheckGrid(const DeviceGroupGrid& grid, int64_t out, int64_t in, const char* op) {
  if (grid.bits < 1 || grid.bits > 8) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": bits must be in [1, 8], got ", grid.bits));
  }
  if (grid.group_size != -1 && grid.group_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": group_size must be -1 or positive, got ", grid.group_size));
  }
  const int64_t group = grid.group_size == -1 ? (in > 0 ? in : 1) : grid.group_size;
  const int64_t num_groups = (in + group - 1) / group;
  if (absl::Status s = CheckMatrix(grid.scales, num_groups, out, op, "grid scales"); !s.ok()) return s;
  return CheckMatrix(grid.zeros, num_groups, out, op, "grid zeros");
}

}  // namespace

absl::StatusOr<DeviceGroupGrid> FindGroupGrid(CudaContext& ctx, const DeviceMatrix<float>& w, int bits,
                                              int group_size, bool sym) {
  constexpr const char* kOp = "cuda::FindGroupGrid";
  if (absl::Status s = CheckMatrix(w, -1, -1, kOp, "w"); !s.ok()) return s;
  if (bits < 1 || bits > 8) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": bits must be in [1, 8], got ", bits));
  }
  if (group_size != -1 && group_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, ": group_size must be -1 or positive, got ", group_size));
  }
  const int64_t group = group_size == -1 ? (w.cols > 0 ? w.cols : 1) : group_size;
  const int64_t num_groups = (w.cols + group - 1) / group;
  DeviceGroupGrid grid;
  grid.bits = bits;
  grid.group_size = group_size;
  absl::StatusOr<DeviceMatrix<float>> scales = DeviceMatrix<float>::Allocate(num_groups, w.rows);
  if (!scales.ok()) return scales.status();
  absl::StatusOr<DeviceMatrix<float>> zeros = DeviceMatrix<float>::Allocate(num_groups, w.rows);
  if (!zeros.ok()) return zeros.status();
  grid.scales = *std::move(scales);
  grid.zeros = *std::move(zeros);
  const int64_t items = num_groups * w.rows;
  if (items == 0) return grid;
  const float maxq = static_cast<float>((1 << bits) - 1);
  FindGroupGridKernel<<<kernel::BlocksFor(items * 32), kernel::kThreads, 0, ctx.stream()>>>(
      w.data(), w.rows, w.cols, group, num_groups, maxq, sym, grid.scales.data(), grid.zeros.data());
  if (absl::Status s = LaunchStatus("FindGroupGridKernel"); !s.ok()) return s;
  return grid;
}

absl::Status QuantizeWithGrid(CudaContext& ctx, const DeviceMatrix<float>& w, const DeviceGroupGrid& grid,
                              DeviceMatrix<uint8_t>* codes, DeviceMatrix<float>* dequantized) {
  constexpr const char* kOp = "cuda::QuantizeWithGrid";
  if (absl::Status s = CheckMatrix(w, -1, -1, kOp, "w"); !s.ok()) return s;
  if (absl::Status s = CheckGrid(grid, w.rows, w.cols, kOp); !s.ok()) return s;
  if (codes != nullptr) {
    if (absl::Status s = CheckMatrix(*codes, w.rows, w.cols, kOp, "codes"); !s.ok()) return s;
  }
  if (dequantized != nullptr) {
    if (absl::Status s = CheckMatrix(*dequantized, w.rows, w.cols, kOp, "dequantized"); !s.ok()) return s;
  }
  const int64_t n = w.size();
  if (n == 0 || (codes == nullptr && dequantized == nullptr)) return absl::OkStatus();
  const int64_t group = grid.group_size == -1 ? w.cols : grid.group_size;
  const float maxq = static_cast<float>((1 << grid.bits) - 1);
  QuantizeWithGridKernel<<<kernel::BlocksFor(n), kernel::kThreads, 0, ctx.stream()>>>(
      w.data(), w.rows, w.cols, group, grid.scales.data(), grid.zeros.data(), maxq,
      codes != nullptr ? codes->data() : nullptr, dequantized != nullptr ? dequantized->data() : nullptr);
  return LaunchStatus("QuantizeWithGridKernel");
}

}  // namespace caliber::cuda
