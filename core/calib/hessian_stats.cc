#include "core/calib/hessian_stats.h"

#include <cmath>

namespace caliber {

HessianStats ComputeHessianStats(const MatrixF& H, int iterations) {
  HessianStats s;
  const Eigen::Index n = H.rows();
  if (n == 0) return s;
  s.trace = H.diagonal().cast<double>().sum();
  const MatrixD h = H.cast<double>();
  // A start vector with no special structure (not orthogonal to the top eigenvector for any
  // H a calibration run produces in practice).
  VectorD v(n);
  for (Eigen::Index i = 0; i < n; ++i) v(i) = 1.0 + 0.5 * std::sin(0.7 * static_cast<double>(i));
  v.normalize();
  double lambda = 0;
  for (int it = 0; it < iterations; ++it) {
    VectorD w = h * v;
    lambda = v.dot(w);
    const double norm = w.norm();
    if (norm == 0) break;
    v = w / norm;
  }
  s.top_eigenvalue = lambda;
  return s;
}

}  // namespace caliber
