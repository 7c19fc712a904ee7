#include "core/transform/orthogonal.h"

#include <cmath>

#include <Eigen/QR>

#include "core/util/splitmix64.h"

namespace caliber {
namespace {

// A portable generator (core/util/splitmix64.h: the same stream everywhere).
class PortableRng {
 public:
  explicit PortableRng(uint64_t seed) : state_(seed) {}
  uint64_t Next() { return SplitMix64(state_); }
  // Uniform in (0, 1).
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }
  // Standard normal by Box–Muller (one of the pair; simplicity over speed).
  double Normal() {
    const double u1 = Uniform();
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

 private:
  uint64_t state_;
};

}  // namespace

bool IsPowerOfTwo(int n) { return n > 0 && (n & (n - 1)) == 0; }

MatrixD RandomizedHadamardOrOrthogonal(int n, uint64_t seed) {
  PortableRng rng(seed);
  if (IsPowerOfTwo(n)) {
    // Sylvester: H(i, j) = (-1)^popcount(i & j); columns get random signs.
    MatrixD H(n, n);
    const double norm = 1.0 / std::sqrt(static_cast<double>(n));
    VectorD sign(n);
    for (int j = 0; j < n; ++j) sign[j] = (rng.Next() >> 63) ? -1.0 : 1.0;
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        H(i, j) = ((__builtin_popcount(static_cast<unsigned>(i & j)) & 1) ? -norm : norm) * sign[j];
      }
    }
    return H;
  }
  MatrixD G(n, n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) G(i, j) = rng.Normal();
  }
  Eigen::HouseholderQR<MatrixD> qr(G);
  MatrixD Q = qr.householderQ();
  const MatrixD R = qr.matrixQR().triangularView<Eigen::Upper>();
  for (int j = 0; j < n; ++j) {
    if (R(j, j) < 0) Q.col(j) *= -1.0;
  }
  return Q;
}

MatrixD CayleyStep(const MatrixD& R, const MatrixD& G, double alpha) {
  const MatrixD A = G * R.transpose() - R * G.transpose();
  const MatrixD I = MatrixD::Identity(R.rows(), R.rows());
  const MatrixD lhs = I + (alpha / 2) * A;
  const MatrixD rhs = (I - (alpha / 2) * A) * R;
  // I + skew is always invertible (eigenvalues 1 + iμ).
  return lhs.partialPivLu().solve(rhs);
}

double RiemannianGradientNorm(const MatrixD& R, const MatrixD& G) {
  return (G * R.transpose() - R * G.transpose()).norm();
}

}  // namespace caliber
