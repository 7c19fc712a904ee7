// cuda::Cholesky / CholeskyInverse / UpperCholeskyOfInverse (cuSOLVER) against core's
// caliber::UpperCholeskyOfInverse (OpenBLAS/LAPACK, float32) and Eigen in double.
//
// Tolerances: the test Hessian H = (2/k)·XᵀX + 1% of mean(diag) (GPTQ's damping) with X a
// Gaussian [k x n], k = 4n, has condition number ≈ ((1 + √(1/4)) / (1 − √(1/4)))² = 9. Backward-
// stable Cholesky and inversion in float32 are then accurate to about n·u·κ ≈ 1.4e-4 relative in
// the worst case (n = 256, u = 2^-24); in practice far better: core's float32 result is 1.2e-7
// from the float64 one (measured), so ‖device − cpu‖_F / ‖cpu‖_F ≤ 1e-5 leaves ~40x margin
// for cuSOLVER's different blocking. In float64 the same bound is ≈ 5e-13; 1e-10 is asserted.
#include "core/cuda/cholesky.h"

#include "core/cuda/host_transfer.h"
#include "core/quant/linalg.h"
#include "gpu_test_util.h"

namespace caliber::cuda {
namespace {

using testing::GpuTest;
using testing::RandomNormal;
using testing::RelativeFrobenius;

MatrixF TestHessian(int n, uint32_t seed) {
  const MatrixF x = RandomNormal(4 * n, n, seed);
  MatrixF h = (x.transpose() * x) * (2.0f / static_cast<float>(4 * n));
  h = (0.5f * (h + h.transpose())).eval();  // exactly symmetric
  const float damp = 0.01f * h.diagonal().mean();
  h.diagonal().array() += damp;
  return h;
}

class CholeskyTest : public GpuTest {};

TEST_F(CholeskyTest, UpperCholeskyOfInverseMatchesCpuFloat32) {
  const MatrixF h = TestHessian(256, 1);
  absl::StatusOr<MatrixF> want = caliber::UpperCholeskyOfInverse(h);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> dh, Upload(ctx(), h));
  ASSERT_OK(UpperCholeskyOfInverse(ctx(), dh));
  ASSERT_OK_AND_ASSIGN(MatrixF got, Download(ctx(), dh));
  EXPECT_TRUE(got.triangularView<Eigen::StrictlyLower>().toDenseMatrix().isZero(0.0f));
  EXPECT_LE(RelativeFrobenius(got, *want), 1e-5);
}

TEST_F(CholeskyTest, UpperCholeskyOfInverseFloat64MatchesEigen) {
  const MatrixD h = TestHessian(256, 2).cast<double>();
  // Reference: H⁻¹ = (L Lᵀ)⁻¹, then H⁻¹ = L2 L2ᵀ and U = L2ᵀ.
  const Eigen::MatrixXd hinv = Eigen::MatrixXd(h).llt().solve(Eigen::MatrixXd::Identity(256, 256));
  const Eigen::MatrixXd sym = 0.5 * (hinv + hinv.transpose());
  const Eigen::MatrixXd want = Eigen::MatrixXd(sym.llt().matrixL()).transpose();
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<double> dh, Upload(ctx(), h));
  ASSERT_OK(UpperCholeskyOfInverse(ctx(), dh));
  ASSERT_OK_AND_ASSIGN(MatrixD got, Download(ctx(), dh));
  EXPECT_LE(RelativeFrobenius(got, want), 1e-10);
}

// The other triangle is poisoned: the factors and inverses must come from the named one alone.
TEST_F(CholeskyTest, FactorsAndInversesReadOnlyTheNamedTriangle) {
  const MatrixF a = TestHessian(128, 3);
  for (Triangle t : {Triangle::kLower, Triangle::kUpper}) {
    MatrixF input = a;
    // Poison the triangle that must not be read.
    if (t == Triangle::kLower) {
      input.triangularView<Eigen::StrictlyUpper>().setConstant(7.0f);
    } else {
      input.triangularView<Eigen::StrictlyLower>().setConstant(7.0f);
    }
    ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> da, Upload(ctx(), input));
    ASSERT_OK(Cholesky(ctx(), da, t));
    ASSERT_OK_AND_ASSIGN(MatrixF got, Download(ctx(), da));
    MatrixF factor;
    if (t == Triangle::kLower) {
      factor = got.triangularView<Eigen::Lower>();
      EXPECT_LE(RelativeFrobenius(MatrixF(factor * factor.transpose()), a), 2e-5);
    } else {
      factor = got.triangularView<Eigen::Upper>();
      EXPECT_LE(RelativeFrobenius(MatrixF(factor.transpose() * factor), a), 2e-5);
    }
    // The inverse from that factor, in the same triangle.
    ASSERT_OK(CholeskyInverse(ctx(), da, t));
    ASSERT_OK_AND_ASSIGN(MatrixF inv, Download(ctx(), da));
    const MatrixD want_inv = MatrixD(Eigen::MatrixXd(a.cast<double>()).inverse());
    if (t == Triangle::kLower) {
      EXPECT_LE(RelativeFrobenius(MatrixF(inv.triangularView<Eigen::Lower>()),
                                  MatrixD(want_inv.triangularView<Eigen::Lower>())), 1e-4);
    } else {
      EXPECT_LE(RelativeFrobenius(MatrixF(inv.triangularView<Eigen::Upper>()),
                                  MatrixD(want_inv.triangularView<Eigen::Upper>())), 1e-4);
    }
  }
}

TEST_F(CholeskyTest, NotPositiveDefiniteIsFailedPreconditionNamingTheMinor) {
  MatrixF a = MatrixF::Identity(16, 16);
  a(2, 2) = -1.0f;  // leading minor of order 3 is negative
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> da, Upload(ctx(), a));
  const absl::Status s = UpperCholeskyOfInverse(ctx(), da);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("Cholesky of H failed: leading minor of order 3"), absl::string_view::npos) << s;
}

TEST_F(CholeskyTest, NonSquareIsInvalidArgument) {
  ASSERT_OK_AND_ASSIGN(DeviceMatrix<float> da, DeviceMatrix<float>::Allocate(4, 5));
  EXPECT_EQ(Cholesky(ctx(), da, Triangle::kLower).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caliber::cuda
