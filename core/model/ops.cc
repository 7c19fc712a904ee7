#include "core/model/ops.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include <cblas.h>

namespace caliber {

void RmsNormInPlace(MatrixF& x, const VectorF& weight, float eps) {
  const Eigen::Index width = weight.size();
  assert(x.cols() % width == 0);
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    for (Eigen::Index c0 = 0; c0 < x.cols(); c0 += width) {
      auto chunk = x.row(r).segment(c0, width);
      const float mean_sq = chunk.squaredNorm() / static_cast<float>(width);
      const float inv = 1.0f / std::sqrt(mean_sq + eps);
      chunk = (chunk.array() * inv * weight.transpose().array()).matrix();
    }
  }
}

MatrixF RmsNorm(const MatrixF& x, const VectorF& weight, float eps) {
  MatrixF y = x;
  RmsNormInPlace(y, weight, eps);
  return y;
}

MatrixF Linear(const MatrixF& x, const MatrixF& weight, const VectorF* bias) {
  assert(x.cols() == weight.cols());
  MatrixF y(x.rows(), weight.rows());
  // SGEMM with beta = 0 straight into y: Eigen's product would zero y first (a full extra
  // pass over the output) before calling the same BLAS routine.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(x.rows()),
              static_cast<blasint>(weight.rows()), static_cast<blasint>(x.cols()), 1.0f, x.data(),
              static_cast<blasint>(x.cols()), weight.data(), static_cast<blasint>(weight.cols()),
              0.0f, y.data(), static_cast<blasint>(y.cols()));
  if (bias != nullptr && bias->size() > 0) y.rowwise() += bias->transpose();
  return y;
}

void SiluMulInPlace(MatrixF& gate, const MatrixF& up) {
  assert(gate.rows() == up.rows() && gate.cols() == up.cols());
  auto g = gate.array();
  g = g / (1.0f + (-g).exp()) * up.array();
}

MatrixF CausalAttention(const MatrixF& q, const MatrixF& k, const MatrixF& v,
                        const AttentionShape& s) {
  const Eigen::Index T = s.seq_len;
  const int d = s.head_dim;
  const int group = s.num_heads / s.num_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  assert(q.rows() == static_cast<Eigen::Index>(s.num_seqs) * T);
  MatrixF out(q.rows(), static_cast<Eigen::Index>(s.num_heads) * d);
  MatrixF scores(T, T);
  for (int b = 0; b < s.num_seqs; ++b) {
    const Eigen::Index r0 = b * T;
    for (int h = 0; h < s.num_heads; ++h) {
      const int kvh = h / group;
      const auto qh = q.block(r0, static_cast<Eigen::Index>(h) * d, T, d);
      const auto kh = k.block(r0, static_cast<Eigen::Index>(kvh) * d, T, d);
      const auto vh = v.block(r0, static_cast<Eigen::Index>(kvh) * d, T, d);
      scores.noalias() = qh * kh.transpose();
      for (Eigen::Index i = 0; i < T; ++i) {
        // Keys j in [lo, i] are visible: causal, and within the sliding window if any.
        const Eigen::Index lo = s.sliding_window ? std::max<Eigen::Index>(0, i - *s.sliding_window + 1) : 0;
        auto row = scores.row(i);
        auto visible = row.segment(lo, i - lo + 1).array();
        visible *= scale;
        visible = (visible - visible.maxCoeff()).exp();
        visible /= visible.sum();
        row.head(lo).setZero();
        row.tail(T - i - 1).setZero();
      }
      out.block(r0, static_cast<Eigen::Index>(h) * d, T, d).noalias() = scores * vh;
    }
  }
  return out;
}

}  // namespace caliber
