#include "core/transform/spectrum.h"

#include <cmath>

#include <Eigen/Cholesky>

namespace caliber {
namespace {

constexpr int kIterations = 200;

}  // namespace

double TopEigenpair(const MatrixD& H, VectorD& v) {
  if (v.size() != H.rows() || v.norm() == 0) v = VectorD::Ones(H.rows());
  v.normalize();
  double lambda = v.dot(H * v);
  for (int it = 0; it < 1000; ++it) {
    const VectorD hv = H * v;
    const double n = hv.norm();
    if (n == 0) return 0;
    v = hv / n;
    const double next = v.dot(H * v);
    const bool converged = std::abs(next - lambda) <= 1e-14 * std::abs(next);
    lambda = next;
    if (converged && it >= 2) break;
  }
  return lambda;
}

SpectrumSummary SummarizeSpectrum(const MatrixD& H, double damp) {
  SpectrumSummary s;
  const int n = static_cast<int>(H.rows());
  if (n == 0) return s;
  s.trace = H.trace();
  MatrixD Hd = H;
  Hd.diagonal().array() += damp * s.trace / n;
  VectorD v;
  const double top = TopEigenpair(Hd, v);
  s.lambda_max = top - damp * s.trace / n;
  Eigen::LLT<MatrixD> llt(Hd);
  if (llt.info() != Eigen::Success) return s;
  VectorD u = VectorD::Ones(n).normalized();
  double inv_min = 0;
  for (int i = 0; i < kIterations; ++i) {
    VectorD w = llt.solve(u);
    inv_min = u.dot(w);
    u = w.normalized();
  }
  s.damped_condition = inv_min > 0 ? top * inv_min : 0;
  return s;
}

}  // namespace caliber
