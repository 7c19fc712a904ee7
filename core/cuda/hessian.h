// GPTQ Hessian accumulation on the device, as caliber::HessianAccumulator (core/quant/hessian.h)
// in float32: per batch H := beta·H + alpha·XᵀX with beta = nsamples / (nsamples + sequences)
// and alpha = 2 / (nsamples + sequences) (computed in double, then rounded to float as core
// does), nsamples counting sequences. Only the lower triangle of the row-major H is maintained,
// the triangle core keeps, and Finalize mirrors it onto the upper one as core's Finalize does,
// so the two results compare element by element (to float32 rounding of the sums: cuBLAS and
// OpenBLAS accumulate in different orders).
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/cuda/context.h"
#include "core/cuda/device_matrix.h"
#include "core/cuda/math_mode.h"

namespace caliber::cuda {

// h [n x n] := beta·h + alpha·xᵀx for x [k x n] on the lower triangle of the row-major h.
// Float32: cublasSsyrk (the strictly upper triangle is not touched). With allow_tf32 (and a
// device that honours it): cublasGemmEx in TF32 over the whole matrix (both triangles written,
// the lower one authoritative) — twice the products of syrk but on tensor cores. Returns the
// math mode used. k = 0 scales h by beta.
absl::StatusOr<MathMode> SymmetricRankKUpdate(CudaContext& ctx, const DeviceMatrix<float>& x, float alpha,
                                              float beta, DeviceMatrix<float>& h,
                                              const MatmulOptions& options = {});

// Copies the strictly lower triangle of the square row-major h onto its upper triangle.
absl::Status MirrorLowerToUpper(CudaContext& ctx, DeviceMatrix<float>& h);

// HessianAccumulator's batch loop on the device. Keeps a pointer to `ctx`, which must outlive it.
class DeviceHessianAccumulator {
 public:
  static absl::StatusOr<DeviceHessianAccumulator> Create(CudaContext& ctx, int in_features,
                                                         const MatmulOptions& options = {});

  // x: [tokens x in_features], the inputs of `num_sequences` >= 1 sequences. A wrong width or
  // count is InvalidArgument (core aborts) and leaves the accumulator unchanged.
  absl::Status AddBatch(const DeviceMatrix<float>& x, int num_sequences);

  // The full symmetric H (a new matrix; the accumulator can go on).
  absl::StatusOr<DeviceMatrix<float>> Finalize() const;

  const DeviceMatrix<float>& lower() const { return h_; }  // lower triangle valid
  int in_features() const { return static_cast<int>(h_.rows); }
  int64_t nsamples() const { return nsamples_; }  // sequences seen
  int64_t tokens() const { return tokens_; }      // rows seen
  // kTf32 once any batch ran on TF32 tensor cores.
  MathMode math_mode() const { return mode_; }

 private:
  CudaContext* ctx_ = nullptr;
  MatmulOptions options_;
  DeviceMatrix<float> h_;
  int64_t nsamples_ = 0;
  int64_t tokens_ = 0;
  MathMode mode_ = MathMode::kFloat32;
};

}  // namespace caliber::cuda
