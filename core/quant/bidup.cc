#include "core/quant/bidup.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "core/quant/linalg.h"
#include "core/quant/olrc.h"
#include "core/quant/quant_grid.h"

namespace caliber {
namespace {

constexpr int kBlock = 128;
// A code moves only if it gets closer to its target by more than this fraction of a grid
// step: ties and rounding noise keep the current code, so no sweep increases the objective.
constexpr double kMinGain = 1e-9;

absl::Status CheckShapes(const MatrixF& H, const QuantizedLinear& q, Eigen::Index rows,
                         Eigen::Index cols) {
  if (rows != q.out_features || cols != q.in_features || H.rows() != cols || H.cols() != cols ||
      q.codes.rows() != rows || q.codes.cols() != cols ||
      static_cast<Eigen::Index>(q.g_idx.size()) != cols) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Bid-Up: shapes disagree: target %dx%d, H %dx%d, quantized layer %dx%d", rows, cols,
        H.rows(), H.cols(), q.out_features, q.in_features));
  }
  return absl::OkStatus();
}

// RTN of each row of A on a symmetric grid (the lora_a_bits option), in place.
void QuantizeRows(MatrixF& A, int bits) {
  const float maxq = static_cast<float>(MaxQ(bits));
  const GridParams p = FindParams(A, bits, /*sym=*/true, /*mse=*/false);
  for (int k = 0; k < A.rows(); ++k) {
    for (int i = 0; i < A.cols(); ++i) {
      A(k, i) = Dequant(QuantCode(A(k, i), p.scale[k], p.zero[k], maxq), p.scale[k], p.zero[k]);
    }
  }
}

// Least-squares B for a fixed A: minimizes tr((E0 - BA) H (E0 - BA)ᵀ), B = E0 H Aᵀ (A H Aᵀ)^+.
MatrixF RefitB(const MatrixF& E0, const MatrixF& H, const MatrixF& A) {
  const Eigen::MatrixXd hat = H.cast<double>() * A.cast<double>().transpose();  // [in x r]
  const Eigen::MatrixXd gram = A.cast<double>() * hat;                           // [r x r]
  const Eigen::MatrixXd rhs = E0.cast<double>() * hat;                           // [out x r]
  const Eigen::MatrixXd bt = gram.completeOrthogonalDecomposition().solve(rhs.transpose());
  return bt.transpose().cast<float>();
}

}  // namespace

absl::StatusOr<int> BidUpSweep(const MatrixD& target, const MatrixF& H, QuantizedLinear& q) {
  const int out = static_cast<int>(target.rows());
  const int in = static_cast<int>(target.cols());
  if (absl::Status s = CheckShapes(H, q, out, in); !s.ok()) return s;
  const double maxq = MaxQ(q.bits);
  const Eigen::MatrixXd Hd = H.cast<double>();

  // Column-major [out x in]: column i of W is contiguous.
  Eigen::MatrixXd Q = q.Dequantize().cast<double>();
  Eigen::Matrix<uint8_t, Eigen::Dynamic, Eigen::Dynamic> codes = q.codes;
  Eigen::MatrixXd R;  // (W̃ - Q) H, current for the columns still to be visited
  {
    Eigen::MatrixXd E = target;
    E -= Q;
    R.noalias() = E * Hd;
  }
  Eigen::MatrixXd D(out, std::min(kBlock, in));  // this block's code moves Δ = q_new - q_old
  int changed = 0;

  for (int i1 = 0; i1 < in; i1 += kBlock) {
    const int i2 = std::min(i1 + kBlock, in);
    const int count = i2 - i1;
    D.leftCols(count).setZero();
    for (int i = i1; i < i2; ++i) {
      const double hii = Hd(i, i);
      if (!(hii > 0)) continue;
      const int g = q.g_idx[static_cast<size_t>(i)];
      double* delta = D.col(i - i1).data();
      const double* r_i = R.col(i).data();
      double* q_i = Q.col(i).data();
      uint8_t* code_i = codes.col(i).data();
      for (int r = 0; r < out; ++r) {
        const float scale = q.scales(g, r);
        const float zero = static_cast<float>(q.zeros(g, r));
        const double t = q_i[r] + r_i[r] / hii;
        const double code = std::clamp(std::nearbyint(t / scale) + zero, 0.0, maxq);
        if (code == code_i[r]) continue;
        const double q_new = Dequant(static_cast<float>(code), scale, zero);
        if (std::abs(q_i[r] - t) - std::abs(q_new - t) <= kMinGain * scale) continue;
        delta[r] = q_new - q_i[r];
        q_i[r] = q_new;
        code_i[r] = static_cast<uint8_t>(code);
        ++changed;
      }
      // E_i -= Δ, so R_j -= Δ H_ij: now for the rest of the block, lazily for later blocks.
      const auto d = D.col(i - i1);
      for (int j = i + 1; j < i2; ++j) R.col(j).noalias() -= Hd(i, j) * d;
    }
    if (i2 < in) {
      R.rightCols(in - i2).noalias() -= D.leftCols(count) * Hd.block(i1, i2, count, in - i2);
    }
  }
  q.codes = codes;
  return changed;
}

double RefineObjective(const MatrixF& W, const MatrixF& H, const QuantizedLinear& q) {
  MatrixD e = W.cast<double>() - q.Dequantize().cast<double>();
  if (q.lora_rank() > 0) e.noalias() -= q.lora_b.cast<double>() * q.lora_a.cast<double>();
  return TraceQuadratic(e, H);
}

absl::Status RefineGptqLora(const MatrixF& W, const MatrixF& H, const QuantSpec& spec,
                            QuantizedLinear& q) {
  if (absl::Status s = CheckShapes(H, q, W.rows(), W.cols()); !s.ok()) return s;
  const int r = q.lora_rank();
  if (r <= 0 || q.lora_b.rows() != W.rows() || q.lora_b.cols() != r ||
      q.lora_a.cols() != W.cols()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "RefineGptqLora: need a low-rank part B [%d x r], A [r x %d], got B %dx%d, A %dx%d",
        W.rows(), W.cols(), q.lora_b.rows(), q.lora_b.cols(), q.lora_a.rows(), q.lora_a.cols()));
  }
  OlrcSolver olrc(H);
  double current = RefineObjective(W, H, q);
  q.report.refine_objectives.push_back(current);

  for (int iter = 0; iter < spec.refine_iters; ++iter) {
    // Bid-Up: Q for the fixed low-rank part.
    const MatrixD target =
        W.cast<double>() - q.lora_b.cast<double>() * q.lora_a.cast<double>();
    absl::StatusOr<int> moved = BidUpSweep(target, H, q);
    if (!moved.ok()) return moved.status();
    current = RefineObjective(W, H, q);
    q.report.refine_objectives.push_back(current);

    // OLrC: the low-rank part for the fixed Q.
    const MatrixF E0 = W - q.Dequantize();
    absl::StatusOr<LowRank> lr = olrc.Solve(E0, r);
    if (!lr.ok()) return lr.status();
    if (spec.lora_a_bits > 0) {
      QuantizeRows(lr->A, spec.lora_a_bits);
      lr->B = RefitB(E0, H, lr->A);
    }
    MatrixF old_a = std::move(q.lora_a), old_b = std::move(q.lora_b);
    q.lora_a = std::move(lr->A);
    q.lora_b = std::move(lr->B);
    const double candidate = RefineObjective(W, H, q);
    const bool accepted = candidate < current;
    if (accepted) {
      current = candidate;
    } else {
      q.lora_a = std::move(old_a);
      q.lora_b = std::move(old_b);
    }
    q.report.refine_objectives.push_back(current);
    // Nothing moved: every further round would repeat this one exactly.
    if (*moved == 0 && !accepted) break;
  }
  return absl::OkStatus();
}

}  // namespace caliber
