// OLrC against the textbook closed form computed a different way: whiten with a Cholesky
// factor H = L Lᵀ (or, for a singular H, with V_+ Λ_+^{1/2}), take the SVD of E0 L, and the
// minimum of tr((E0 - BA) H (E0 - BA)ᵀ) over rank r is the sum of the squared singular values
// beyond r (Eckart–Young). Random rank-r alternatives must never do better.
#include "core/quant/olrc.h"

#include <algorithm>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "core/quant/quantized_linear.h"
#include "core/quant/rtn.h"

namespace caliber {
namespace {

MatrixF Gaussian(int rows, int cols, float sigma, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  MatrixF m(rows, cols);
  for (float& v : m.reshaped()) v = normal(rng);
  return m;
}

MatrixF HessianOf(const MatrixF& x) {
  MatrixF h = (2.0f / static_cast<float>(x.rows())) * (x.transpose() * x);
  return (0.5f * (h + h.transpose())).eval();
}

MatrixF CorrelatedInputs(int tokens, int features, uint32_t seed) {
  MatrixF x = Gaussian(tokens, features, 1.0f, seed);
  x += Gaussian(tokens, 3, 3.0f, seed + 1) * Gaussian(3, features, 1.0f, seed + 2);
  return x;
}

double Objective(const Eigen::MatrixXd& E0, const Eigen::MatrixXd& BA, const Eigen::MatrixXd& H) {
  const Eigen::MatrixXd D = E0 - BA;
  return (D * H * D.transpose()).trace();
}

// Returns {minimum, minimizer} from a factor F with H = F Fᵀ: min = Σ_{k>r} σ_k(E0 F)².
struct ClosedForm {
  double minimum;
  Eigen::MatrixXd whitened_truncation;  // T_r(E0 F)
};
ClosedForm ViaFactor(const Eigen::MatrixXd& E0, const Eigen::MatrixXd& F, int r) {
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(E0 * F, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::VectorXd s = svd.singularValues();
  double tail = 0;
  for (int k = r; k < s.size(); ++k) tail += s[k] * s[k];
  const Eigen::MatrixXd T = svd.matrixU().leftCols(r) * s.head(r).asDiagonal() *
                            svd.matrixV().leftCols(r).transpose();
  return {tail, T};
}

struct OlrcCase {
  int out;
  int in;
  int rank;
  int tokens;  // < in gives a singular H
};

class OlrcTest : public ::testing::TestWithParam<OlrcCase> {};

TEST_P(OlrcTest, ReachesTheEckartYoungMinimum) {
  const OlrcCase c = GetParam();
  const MatrixF W = Gaussian(c.out, c.in, 0.05f, 11);
  QuantSpec spec;
  spec.bits = 3;
  spec.group_size = -1;
  absl::StatusOr<QuantizedLinear> q = RtnQuantize(W, spec);
  ASSERT_TRUE(q.ok()) << q.status();
  const MatrixF E0f = W - q->Dequantize();
  const MatrixF Hf = HessianOf(CorrelatedInputs(c.tokens, c.in, 12));

  absl::StatusOr<LowRank> lr = OptimalLowRank(E0f, Hf, c.rank);
  ASSERT_TRUE(lr.ok()) << lr.status();
  ASSERT_EQ(lr->B.rows(), c.out);
  ASSERT_EQ(lr->B.cols(), c.rank);
  ASSERT_EQ(lr->A.rows(), c.rank);
  ASSERT_EQ(lr->A.cols(), c.in);

  const Eigen::MatrixXd E0 = E0f.cast<double>();
  const Eigen::MatrixXd H = Hf.cast<double>();
  const Eigen::MatrixXd BA = lr->B.cast<double>() * lr->A.cast<double>();
  const double got = Objective(E0, BA, H);

  Eigen::MatrixXd F;
  const bool singular = c.tokens < c.in;
  double dropped = 0;  // what the eigenvalues F leaves out can move the objective by
  if (!singular) {
    F = H.llt().matrixL();
  } else {
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(H);
    const double floor = 1e-10 * eig.eigenvalues().maxCoeff();
    std::vector<int> keep;
    for (int k = 0; k < c.in; ++k) {
      if (eig.eigenvalues()[k] > floor) {
        keep.push_back(k);
      } else {
        // F's minimizer is 0 along v_k, the solver's (which sees H) is BA.
        const Eigen::VectorXd v = eig.eigenvectors().col(k);
        dropped += std::abs(eig.eigenvalues()[k]) *
                   std::max((E0 * v).squaredNorm(), ((E0 - BA) * v).squaredNorm());
      }
    }
    F.resize(c.in, static_cast<Eigen::Index>(keep.size()));
    for (size_t j = 0; j < keep.size(); ++j) {
      F.col(static_cast<Eigen::Index>(j)) =
          eig.eigenvectors().col(keep[j]) * std::sqrt(eig.eigenvalues()[keep[j]]);
    }
  }
  const ClosedForm want = ViaFactor(E0, F, c.rank);
  const double before = Objective(E0, Eigen::MatrixXd::Zero(c.out, c.in), H);
  ASSERT_GT(want.minimum, 0);
  EXPECT_LT(want.minimum, before);
  // The solver works in float32: 1e-6 relative. A singular H computed in float32 carries
  // eigenvalues of ±n·u_f·λmax in its null space; F keeps only those above the floor while the
  // solver sees H itself: the two minima differ by at most Σ_dropped |λ_k|·‖(E0 − X) v_k‖² at
  // either minimizer X (the objective is linear in H), whatever order BLAS summed H in.
  EXPECT_NEAR(got, want.minimum, 1e-6 * want.minimum + dropped);

  if (!singular) {
    // The minimizer is unique (σ_r > σ_{r+1}): BA = T_r(E0 L) L^-1.
    const Eigen::MatrixXd L = F;
    const Eigen::MatrixXd want_ba =
        L.transpose().triangularView<Eigen::Upper>().solve(want.whitened_truncation.transpose())
            .transpose();
    EXPECT_LE((BA - want_ba).norm(), 1e-4 * want_ba.norm());
  }

  // No random rank-r matrix, nor a perturbation of the optimum, does better.
  std::mt19937 rng(99);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int trial = 0; trial < 20; ++trial) {
    Eigen::MatrixXd dB(c.out, c.rank), dA(c.rank, c.in);
    for (double& v : dB.reshaped()) v = normal(rng);
    for (double& v : dA.reshaped()) v = normal(rng);
    const double eps = 1e-3 * BA.norm() / (dB * dA).norm();
    const Eigen::MatrixXd B2 = lr->B.cast<double>() + eps * dB;
    const Eigen::MatrixXd A2 = lr->A.cast<double>() + eps * dA;
    EXPECT_GE(Objective(E0, B2 * A2, H), got * (1 - 1e-9));
    EXPECT_GE(Objective(E0, (BA.norm() / (dB * dA).norm()) * dB * dA, H), got);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, OlrcTest,
                         ::testing::Values(OlrcCase{24, 64, 4, 256},    // out < in
                                           OlrcCase{48, 32, 3, 256},    // out > in: H^{1/2} path
                                           OlrcCase{32, 32, 8, 128},
                                           OlrcCase{20, 64, 4, 40},     // singular H, out < in
                                           OlrcCase{64, 48, 5, 30}));   // singular H, out > in

TEST(OlrcTest, RejectsBadRank) {
  const MatrixF E0 = Gaussian(8, 16, 1.0f, 1);
  const MatrixF H = HessianOf(Gaussian(64, 16, 1.0f, 2));
  EXPECT_EQ(OptimalLowRank(E0, H, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OptimalLowRank(E0, H, 9).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OptimalLowRank(E0, MatrixF::Identity(8, 8), 2).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caliber
