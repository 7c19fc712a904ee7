// Bid-Up: sweeps never increase tr((W̃ - Q) H (W̃ - Q)ᵀ), and once a sweep changes nothing, no
// single code moved anywhere on its grid lowers the objective (checked by brute force over
// every entry and every code). The objective here is computed directly in double.
#include "core/quant/bidup.h"

#include <random>

#include <gtest/gtest.h>

#include "core/quant/gptq.h"
#include "core/quant/quant_grid.h"
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

MatrixF CorrelatedHessian(int tokens, int features, uint32_t seed) {
  MatrixF x = Gaussian(tokens, features, 1.0f, seed);
  x += Gaussian(tokens, 3, 3.0f, seed + 1) * Gaussian(3, features, 1.0f, seed + 2);
  MatrixF h = (2.0f / static_cast<float>(tokens)) * (x.transpose() * x);
  return (0.5f * (h + h.transpose())).eval();
}

// Q from the codes, written out independently of QuantizedLinear::Dequantize.
Eigen::MatrixXd Dequantized(const QuantizedLinear& q) {
  Eigen::MatrixXd Q(q.out_features, q.in_features);
  for (int r = 0; r < q.out_features; ++r) {
    for (int i = 0; i < q.in_features; ++i) {
      const int g = q.g_idx[static_cast<size_t>(i)];
      volatile float v = q.scales(g, r) * (static_cast<float>(q.codes(r, i)) -
                                           static_cast<float>(q.zeros(g, r)));
      Q(r, i) = static_cast<float>(v);
    }
  }
  return Q;
}

double Objective(const Eigen::MatrixXd& target, const Eigen::MatrixXd& Q,
                 const Eigen::MatrixXd& H) {
  const Eigen::MatrixXd D = target - Q;
  return (D * H * D.transpose()).trace();
}

struct Problem {
  MatrixF W, H;
  QuantizedLinear q;
  Eigen::MatrixXd target;  // W - B·A
};

Problem MakeProblem(int out, int in, int bits, int group, uint32_t seed, bool with_low_rank) {
  Problem s;
  s.W = Gaussian(out, in, 0.05f, seed);
  s.H = CorrelatedHessian(4 * in, in, seed + 10);
  QuantSpec spec;
  spec.bits = bits;
  spec.group_size = group;
  spec.sym = false;
  s.q = *RtnQuantize(s.W, spec);
  s.target = s.W.cast<double>();
  if (with_low_rank) {
    const MatrixF B = Gaussian(out, 2, 0.02f, seed + 20), A = Gaussian(2, in, 0.5f, seed + 21);
    s.q.lora_b = B;
    s.q.lora_a = A;
    s.target -= B.cast<double>() * A.cast<double>();
  }
  return s;
}

// in = 160 spans two of the sweep's 128-column blocks, so the lazy updates are exercised too.
class BidUpConvergenceTest : public ::testing::TestWithParam<int> {};

TEST_P(BidUpConvergenceTest, SweepsNeverIncreaseAndConvergeToACoordinateMinimum) {
  const int in = GetParam();
  for (bool with_low_rank : {false, true}) {
    Problem s = MakeProblem(in > 64 ? 3 : 6, in, 2, 8, 5, with_low_rank);
    const Eigen::MatrixXd H = s.H.cast<double>();
    const float maxq = static_cast<float>(MaxQ(s.q.bits));
    const MatrixF scales = s.q.scales;
    const IntMatrix zeros = s.q.zeros;
    const std::vector<int32_t> g_idx = s.q.g_idx;

    double previous = Objective(s.target, Dequantized(s.q), H);
    const double start = previous;
    int sweeps = 0;
    for (;;) {
      absl::StatusOr<int> changed = BidUpSweep(s.target, s.H, s.q);
      ASSERT_TRUE(changed.ok()) << changed.status();
      ++sweeps;
      const double now = Objective(s.target, Dequantized(s.q), H);
      EXPECT_LE(now, previous) << "sweep " << sweeps;
      EXPECT_NEAR(RefineObjective(s.W, s.H, s.q), now, 1e-9 * now);
      previous = now;
      if (*changed == 0) break;
      ASSERT_LT(sweeps, 100);
    }
    EXPECT_LT(previous, 0.9 * start);  // RTN left plenty to gain
    EXPECT_EQ(s.q.scales, scales);     // the grid is fixed
    EXPECT_EQ(s.q.zeros, zeros);
    EXPECT_EQ(s.q.g_idx, g_idx);
    EXPECT_LE(s.q.codes.maxCoeff(), maxq);

    // Brute force: every entry, every other code.
    const Eigen::MatrixXd Q = Dequantized(s.q);
    for (int r = 0; r < s.q.out_features; ++r) {
      for (int i = 0; i < s.q.in_features; ++i) {
        const int g = s.q.g_idx[static_cast<size_t>(i)];
        for (int c = 0; c <= static_cast<int>(maxq); ++c) {
          if (c == s.q.codes(r, i)) continue;
          Eigen::MatrixXd moved = Q;
          volatile float v = s.q.scales(g, r) * (static_cast<float>(c) -
                                                 static_cast<float>(s.q.zeros(g, r)));
          moved(r, i) = static_cast<float>(v);
          EXPECT_GE(Objective(s.target, moved, H), previous * (1 - 1e-12))
              << "moving (" << r << "," << i << ") to code " << c << " lowers the objective";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, BidUpConvergenceTest, ::testing::Values(32, 160));

TEST(BidUpTest, ImprovesGptqWithoutBreakingIt) {
  const MatrixF W = Gaussian(16, 96, 0.05f, 40);
  const MatrixF H = CorrelatedHessian(384, 96, 41);
  QuantSpec spec;
  spec.bits = 3;
  spec.group_size = 32;
  spec.act_order = true;
  absl::StatusOr<QuantizedLinear> q = GptqQuantize(W, H, spec);
  ASSERT_TRUE(q.ok()) << q.status();
  const Eigen::MatrixXd target = W.cast<double>();
  const Eigen::MatrixXd Hd = H.cast<double>();
  double previous = Objective(target, Dequantized(*q), Hd);
  for (int sweep = 0; sweep < 3; ++sweep) {
    ASSERT_TRUE(BidUpSweep(target, H, *q).ok());
    const double now = Objective(target, Dequantized(*q), Hd);
    EXPECT_LE(now, previous);
    previous = now;
  }
}

TEST(BidUpTest, LeavesDeadColumnsAlone) {
  Problem s = MakeProblem(4, 16, 3, -1, 7, false);
  s.H.row(5).setZero();
  s.H.col(5).setZero();
  const auto before = s.q.codes.col(5).eval();
  ASSERT_TRUE(BidUpSweep(s.target, s.H, s.q).ok());
  EXPECT_EQ(s.q.codes.col(5), before);
}

TEST(BidUpTest, RejectsMismatchedShapes) {
  Problem s = MakeProblem(4, 16, 3, -1, 7, false);
  EXPECT_EQ(BidUpSweep(Eigen::MatrixXd::Zero(4, 8), s.H, s.q).status().code(),
            absl::StatusCode::kInvalidArgument);
  QuantSpec spec;
  spec.refine_iters = 1;
  EXPECT_EQ(RefineGptqLora(s.W, s.H, spec, s.q).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caliber
