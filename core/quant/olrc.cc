#include "core/quant/olrc.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "core/quant/linalg.h"

namespace caliber {

OlrcSolver::OlrcSolver(const MatrixF& H) : H_(H.cast<double>()) {}

absl::StatusOr<LowRank> OlrcSolver::Solve(const MatrixF& E0, int rank) {
  const int out = static_cast<int>(E0.rows());
  const int in = static_cast<int>(E0.cols());
  if (H_.rows() != in || H_.cols() != in) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "OLrC: H is %dx%d but the error has %d columns", H_.rows(), H_.cols(), in));
  }
  if (rank <= 0 || rank > std::min(out, in)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "OLrC: rank must be in [1, min(out, in)=%d], got %d", std::min(out, in), rank));
  }
  const Eigen::MatrixXd e = E0.cast<double>();
  Eigen::MatrixXd u_r(out, rank);  // top-r left singular vectors of E0 S

  if (out <= in) {
    const Eigen::MatrixXd eh = e * H_;
    Eigen::MatrixXd k = eh * e.transpose();  // E0 H E0ᵀ [out x out]
    k = (0.5 * (k + k.transpose())).eval();
    absl::StatusOr<EigenPairs> top = TopEigenpairs(k, rank);
    if (!top.ok()) return top.status();
    u_r = top->vectors;
  } else {
    if (!sqrt_.has_value()) {
      absl::StatusOr<Eigen::MatrixXd> s = SymmetricSqrt(H_);
      if (!s.ok()) return s.status();
      sqrt_ = *std::move(s);
    }
    const Eigen::MatrixXd m = e * *sqrt_;  // E0 S [out x in]
    Eigen::MatrixXd k = m.transpose() * m;
    k = (0.5 * (k + k.transpose())).eval();
    absl::StatusOr<EigenPairs> top = TopEigenpairs(k, rank);
    if (!top.ok()) return top.status();
    const Eigen::MatrixXd mv = m * top->vectors;  // U_r Σ_r
    for (int j = 0; j < rank; ++j) {
      const double sigma = mv.col(j).norm();
      // σ = 0: E0 S has rank < r and any direction is optimal; contribute nothing.
      if (sigma > 0) {
        u_r.col(j) = mv.col(j) / sigma;
      } else {
        u_r.col(j).setZero();
      }
    }
  }

  LowRank lr;
  lr.B = u_r.cast<float>();
  lr.A = (u_r.transpose() * e).cast<float>();
  return lr;
}

absl::StatusOr<LowRank> OptimalLowRank(const MatrixF& E0, const MatrixF& H, int rank) {
  OlrcSolver solver(H);
  return solver.Solve(E0, rank);
}

}  // namespace caliber
