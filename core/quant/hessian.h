// The GPTQ Hessian of one linear layer, H = 2/nsamples · Σ XᵀX over its calibration inputs,
// accumulated batch by batch exactly as the reference gptq.py add_batch does:
//   H *= nsamples / (nsamples + num_sequences); nsamples += num_sequences;
//   H += (2 / nsamples) · xᵀx.
// Like the reference, nsamples counts sequences (the leading batch dimension of the input),
// not tokens: with equal-length sequences the two differ by a constant factor that the relative
// damping and every GPTQ decision are invariant to. Only the [in x in] lower triangle is
// stored and updated (BLAS-3 syrk); activations are never kept.
#pragma once

#include <cstdint>

#include "core/tensor/matrix.h"

namespace caliber {

class HessianAccumulator {
 public:
  enum class Precision { kFloat32, kFloat64 };

  explicit HessianAccumulator(int in_features, Precision precision = Precision::kFloat32);

  // x: [tokens x in_features], the inputs of `num_sequences` sequences (num_sequences >= 1).
  // A column count other than in_features or num_sequences < 1 is a programming error and
  // aborts with a message.
  void AddBatch(const MatrixF& x, int num_sequences);

  MatrixF Finalize() const;        // full symmetric H in float32
  MatrixD FinalizeDouble() const;  // full symmetric H in float64

  int in_features() const { return in_features_; }
  Precision precision() const { return precision_; }
  int64_t nsamples() const { return nsamples_; }  // sequences seen
  int64_t tokens() const { return tokens_; }      // rows seen

 private:
  int in_features_;
  Precision precision_;
  int64_t nsamples_ = 0;
  int64_t tokens_ = 0;
  MatrixF h32_;  // lower triangle valid (kFloat32)
  MatrixD h64_;  // lower triangle valid (kFloat64)
};

}  // namespace caliber
