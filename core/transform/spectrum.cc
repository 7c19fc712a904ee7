#include "core/transform/spectrum.h"

#include <Eigen/Cholesky>

namespace caliber {
namespace {

constexpr int kIterations = 200;

}  // namespace

SpectrumSummary SummarizeSpectrum(const MatrixD& H, double damp) {
  SpectrumSummary s;
  const int n = static_cast<int>(H.rows());
  if (n == 0) return s;
  s.trace = H.trace();
  MatrixD Hd = H;
  Hd.diagonal().array() += damp * s.trace / n;
  VectorD v = VectorD::Ones(n).normalized();
  double top = 0;
  for (int i = 0; i < kIterations; ++i) {
    VectorD w = Hd * v;
    top = v.dot(w);
    if (w.norm() == 0) break;
    v = w.normalized();
  }
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
