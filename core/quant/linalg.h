// Dense linear algebra the quantizers need beyond Eigen's products, done by LAPACK/BLAS
// (OpenBLAS): blocked BLAS-3 Cholesky and inverse, and symmetric eigensolvers that stay fast
// at 4096 x 4096 (Eigen's SelfAdjointEigenSolver takes ~10x longer there).
#pragma once

#include <algorithm>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/tensor/matrix.h"

namespace caliber {

// Out-of-place transpose in cache-sized tiles (a plain Eigen transpose copy walks one side with
// a stride of a whole row, which costs ~0.3 s at 4096 x 4096).
template <typename Scalar>
Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> TransposedCopy(
    const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>& m) {
  constexpr Eigen::Index kTile = 64;
  const Eigen::Index rows = m.rows(), cols = m.cols();
  Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> t(cols, rows);
  for (Eigen::Index r0 = 0; r0 < rows; r0 += kTile) {
    const Eigen::Index r1 = std::min(r0 + kTile, rows);
    for (Eigen::Index c0 = 0; c0 < cols; c0 += kTile) {
      const Eigen::Index c1 = std::min(c0 + kTile, cols);
      for (Eigen::Index c = c0; c < c1; ++c) {
        for (Eigen::Index r = r0; r < r1; ++r) t(c, r) = m(r, c);
      }
    }
  }
  return t;
}

// GPTQ's Hinv: the upper Cholesky factor U of H^-1 (H^-1 = UᵀU), computed in float32 the way
// gptq.py does it (cholesky -> cholesky_inverse -> cholesky(upper=True)). FailedPrecondition
// when H (or H^-1 after rounding) is not positive definite.
absl::StatusOr<MatrixF> UpperCholeskyOfInverse(MatrixF h);

// The k largest eigenvalues (descending) of the symmetric `a` and their eigenvectors as columns
// [n x k], each sign-fixed so that its largest-magnitude component (first on ties) is positive.
struct EigenPairs {
  Eigen::VectorXd values;
  Eigen::MatrixXd vectors;
};
absl::StatusOr<EigenPairs> TopEigenpairs(const Eigen::MatrixXd& a, int k);

// Symmetric square root S of the symmetric positive semi-definite `a` (S = Sᵀ, S² = a), with
// eigenvalues below zero (rounding) clipped to zero.
absl::StatusOr<Eigen::MatrixXd> SymmetricSqrt(const Eigen::MatrixXd& a);

// tr(E H Eᵀ) through the Gram matrix EᵀE (one BLAS-3 rank-k update, half the flops of forming
// E·H), summed in double. E is [m x n], H symmetric [n x n] (only its lower triangle is read).
// The double version is exact to double rounding even when E hides in H's small directions,
// as GPTQ's error does; the float one (twice as fast) suits quantities without such
// cancellation, like the output energy tr(W H Wᵀ).
double TraceQuadratic(const MatrixD& e, const MatrixF& h);
double TraceQuadratic(const MatrixF& e, const MatrixF& h);

}  // namespace caliber
