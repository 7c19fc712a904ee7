// Rotary position embeddings on the device in Hugging Face's rotate_half convention, as
// caliber::RopeTable::Apply (core/model/rope.h), from the same precomputed cos/sin table
// (UploadRopeTable in core/cuda/host_transfer.h copies core's table). Each output is
// x1·cos − x2·sin (resp. x2·cos + x1·sin) with every product and sum rounded separately, as
// torch computes it; core's loop may be contracted into FMAs by the host compiler, so the two
// agree to about one float32 rounding of those terms.
#pragma once

#include "absl/status/status.h"
#include "core/cuda/context.h"
#include "core/cuda/device_matrix.h"

namespace caliber::cuda {

struct DeviceRopeTable {
  DeviceMatrix<float> cos;  // [max_positions x head_dim/2]
  DeviceMatrix<float> sin;
};

// Rotates every head of x [num_seqs·seq_len x num_heads·head_dim] in place; token t of each
// sequence sits at position t (seq_len <= the table's positions).
absl::Status ApplyRope(CudaContext& ctx, const DeviceRopeTable& table, DeviceMatrix<float>& x,
                       int num_seqs, int seq_len, int num_heads, int head_dim);

}  // namespace caliber::cuda
