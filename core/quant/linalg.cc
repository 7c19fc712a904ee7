#include "core/quant/linalg.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "absl/strings/str_format.h"

// LAPACK as exported by OpenBLAS (32-bit integers). The trailing size_t arguments are the
// hidden Fortran lengths of the character arguments.
extern "C" {
void spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info, size_t);
void spotri_(const char* uplo, const int* n, float* a, const int* lda, int* info, size_t);
void dsyevr_(const char* jobz, const char* range, const char* uplo, const int* n, double* a,
             const int* lda, const double* vl, const double* vu, const int* il, const int* iu,
             const double* abstol, int* m, double* w, double* z, const int* ldz, int* isuppz,
             double* work, const int* lwork, int* iwork, const int* liwork, int* info, size_t,
             size_t, size_t);
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda,
             double* w, double* work, const int* lwork, int* iwork, const int* liwork, int* info,
             size_t, size_t);
}

namespace caliber {

absl::StatusOr<MatrixF> UpperCholeskyOfInverse(MatrixF h) {
  const int n = static_cast<int>(h.rows());
  const char lower = 'L';
  int info = 0;
  // h is symmetric, so its row-major buffer is also the column-major matrix LAPACK expects.
  spotrf_(&lower, &n, h.data(), &n, &info, 1);
  if (info != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "Cholesky of H failed: leading minor of order %d is not positive definite", info));
  }
  spotri_(&lower, &n, h.data(), &n, &info, 1);  // lower triangle of H^-1
  if (info != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("inverse of H failed: its Cholesky factor has a zero at %d", info));
  }
  spotrf_(&lower, &n, h.data(), &n, &info, 1);  // H^-1 = L2 L2ᵀ
  if (info != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "Cholesky of H^-1 failed: leading minor of order %d is not positive definite", info));
  }
  // Read row-major, the column-major lower factor L2 is L2ᵀ = U; the strictly lower part
  // still holds the untouched upper triangle of H.
  h.triangularView<Eigen::StrictlyLower>().setZero();
  return h;
}

absl::StatusOr<EigenPairs> TopEigenpairs(const Eigen::MatrixXd& a, int k) {
  const int n = static_cast<int>(a.rows());
  if (a.cols() != n || k < 0 || k > n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "TopEigenpairs: need a square matrix and 0 <= k <= n, got %dx%d and k=%d", a.rows(),
        a.cols(), k));
  }
  EigenPairs out{Eigen::VectorXd(k), Eigen::MatrixXd(n, k)};
  if (k == 0) return out;

  Eigen::MatrixXd work_a = a;  // dsyevr destroys its input
  Eigen::VectorXd w(n);
  Eigen::MatrixXd z(n, k);
  std::vector<int> isuppz(2 * static_cast<size_t>(k));
  const char jobz = 'V', range = 'I', uplo = 'L';
  const double vl = 0, vu = 0, abstol = 0;
  const int il = n - k + 1, iu = n;  // 1-based, ascending order
  int m = 0, info = 0, lwork = -1, liwork = -1, iwork_size = 0;
  double work_size = 0;
  dsyevr_(&jobz, &range, &uplo, &n, work_a.data(), &n, &vl, &vu, &il, &iu, &abstol, &m, w.data(),
          z.data(), &n, isuppz.data(), &work_size, &lwork, &iwork_size, &liwork, &info, 1, 1, 1);
  lwork = static_cast<int>(work_size);
  liwork = iwork_size;
  std::vector<double> work(static_cast<size_t>(std::max(lwork, 1)));
  std::vector<int> iwork(static_cast<size_t>(std::max(liwork, 1)));
  dsyevr_(&jobz, &range, &uplo, &n, work_a.data(), &n, &vl, &vu, &il, &iu, &abstol, &m, w.data(),
          z.data(), &n, isuppz.data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1,
          1);
  if (info != 0 || m != k) {
    return absl::InternalError(absl::StrFormat(
        "symmetric eigensolver (dsyevr) failed: info=%d, %d of %d eigenpairs", info, m, k));
  }
  for (int j = 0; j < k; ++j) {
    out.values[j] = w[k - 1 - j];
    Eigen::VectorXd v = z.col(k - 1 - j);
    Eigen::Index arg = 0;
    v.cwiseAbs().maxCoeff(&arg);
    if (v[arg] < 0) v = -v;
    out.vectors.col(j) = v;
  }
  return out;
}

absl::StatusOr<Eigen::MatrixXd> SymmetricSqrt(const Eigen::MatrixXd& a) {
  const int n = static_cast<int>(a.rows());
  Eigen::MatrixXd u = a;
  Eigen::VectorXd w(n);
  const char jobz = 'V', uplo = 'L';
  int info = 0, lwork = -1, liwork = -1, iwork_size = 0;
  double work_size = 0;
  dsyevd_(&jobz, &uplo, &n, u.data(), &n, w.data(), &work_size, &lwork, &iwork_size, &liwork,
          &info, 1, 1);
  lwork = static_cast<int>(work_size);
  liwork = iwork_size;
  std::vector<double> work(static_cast<size_t>(std::max(lwork, 1)));
  std::vector<int> iwork(static_cast<size_t>(std::max(liwork, 1)));
  dsyevd_(&jobz, &uplo, &n, u.data(), &n, w.data(), work.data(), &lwork, iwork.data(), &liwork,
          &info, 1, 1);
  if (info != 0) {
    return absl::InternalError(
        absl::StrFormat("symmetric eigensolver (dsyevd) failed: info=%d", info));
  }
  const Eigen::VectorXd root = w.cwiseMax(0.0).cwiseSqrt();
  return Eigen::MatrixXd(u * root.asDiagonal() * u.transpose());
}

namespace {

// <G, H> over the lower triangles of two symmetric matrices.
template <typename Scalar>
double LowerInnerProduct(const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic,
                                             Eigen::RowMajor>& gram,
                         const MatrixF& h) {
  const Eigen::Index n = h.rows();
  double diagonal = 0, off_diagonal = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const Scalar* g = gram.data() + i * n;
    const float* hr = h.data() + i * n;
    double row = 0;
    for (Eigen::Index j = 0; j < i; ++j) row += static_cast<double>(g[j]) * hr[j];
    off_diagonal += row;
    diagonal += static_cast<double>(g[i]) * hr[i];
  }
  return diagonal + 2 * off_diagonal;
}

}  // namespace

double TraceQuadratic(const MatrixD& e, const MatrixF& h) {
  const int m = static_cast<int>(e.rows());
  const int n = static_cast<int>(e.cols());
  if (m == 0 || n == 0) return 0.0;
  MatrixD gram(n, n);
  cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, n, m, 1.0, e.data(), n, 0.0, gram.data(), n);
  return LowerInnerProduct(gram, h);
}

double TraceQuadratic(const MatrixF& e, const MatrixF& h) {
  const int m = static_cast<int>(e.rows());
  const int n = static_cast<int>(e.cols());
  if (m == 0 || n == 0) return 0.0;
  MatrixF gram(n, n);
  cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, n, m, 1.0f, e.data(), n, 0.0f, gram.data(), n);
  return LowerInnerProduct(gram, h);
}

}  // namespace caliber
