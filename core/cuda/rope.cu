#include "core/cuda/rope.h"

#include "core/cuda/kernel_util.cuh"

namespace caliber::cuda {
namespace {

// One thread per (row, head, i < half).
__global__ void RopeKernel(float* x, const float* cos_table, const float* sin_table, int64_t rows,
                           int seq_len, int num_heads, int head_dim) {
  const int half = head_dim / 2;
  const int64_t per_row = static_cast<int64_t>(num_heads) * half;
  const int64_t n = rows * per_row;
  for (int64_t idx = kernel::GlobalThread(); idx < n; idx += kernel::GlobalStride()) {
    const int64_t row = idx / per_row;
    const int64_t rem = idx - row * per_row;
    const int64_t head = rem / half;
    const int i = static_cast<int>(rem - head * half);
    const int64_t pos = row % seq_len;
    const float c = cos_table[pos * half + i];
    const float s = sin_table[pos * half + i];
    float* x1 = x + row * num_heads * static_cast<int64_t>(head_dim) + head * head_dim;
    const float a = x1[i];
    const float b = x1[i + half];
    x1[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    x1[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
  }
}

}  // namespace

absl::Status ApplyRope(CudaContext& ctx, const DeviceRopeTable& table, DeviceMatrix<float>& x,
                       int num_seqs, int seq_len, int num_heads, int head_dim) {
  constexpr const char* kOp = "cuda::ApplyRope";
  if (num_seqs < 0 || seq_len < 1 || num_heads < 1 || head_dim < 2 || head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        kOp, ": bad shape num_seqs=", num_seqs, " seq_len=", seq_len, " num_heads=", num_heads,
        " head_dim=", head_dim, " (head_dim must be even)"));
  }
  const int half = head_dim / 2;
  if (absl::Status s = CheckMatrix(table.cos, -1, half, kOp, "cos table"); !s.ok()) return s;
  if (absl::Status s = CheckMatrix(table.sin, table.cos.rows, half, kOp, "sin table"); !s.ok()) return s;
  if (seq_len > table.cos.rows) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": seq_len ", seq_len, " exceeds the table's ",
                                                   table.cos.rows, " positions"));
  }
  if (absl::Status s = CheckMatrix(x, static_cast<int64_t>(num_seqs) * seq_len,
                                   static_cast<int64_t>(num_heads) * head_dim, kOp, "x");
      !s.ok()) {
    return s;
  }
  const int64_t n = x.rows * num_heads * static_cast<int64_t>(half);
  if (n == 0) return absl::OkStatus();
  RopeKernel<<<kernel::BlocksFor(n), kernel::kThreads, 0, ctx.stream()>>>(
      x.data(), table.cos.data(), table.sin.data(), x.rows, seq_len, num_heads, head_dim);
  return LaunchStatus("RopeKernel");
}

}  // namespace caliber::cuda
