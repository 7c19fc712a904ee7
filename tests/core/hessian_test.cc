// HessianAccumulator against a direct (2 / nsequences) · XᵀX over all inputs at once, in double.
#include "core/quant/hessian.h"

#include <random>

#include <gtest/gtest.h>

namespace caliber {
namespace {

MatrixF RandomInputs(int tokens, int features, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  MatrixF x(tokens, features);
  for (int t = 0; t < tokens; ++t) {
    for (int f = 0; f < features; ++f) {
      x(t, f) = normal(rng) * (1.0f + 0.1f * static_cast<float>(f % 7));
    }
  }
  return x;
}

// Batches of {tokens, sequences}.
struct Batch {
  int tokens;
  int sequences;
};

MatrixD DirectHessian(const MatrixF& all, int total_sequences) {
  const MatrixD x = all.cast<double>();
  MatrixD h = MatrixD::Zero(x.cols(), x.cols());
  for (int t = 0; t < x.rows(); ++t) {
    for (int i = 0; i < x.cols(); ++i) {
      for (int j = 0; j < x.cols(); ++j) h(i, j) += x(t, i) * x(t, j);
    }
  }
  return h * (2.0 / total_sequences);
}

class HessianTest : public ::testing::TestWithParam<HessianAccumulator::Precision> {};

TEST_P(HessianTest, BatchedEqualsDirect) {
  const int features = 24;
  const std::vector<Batch> batches = {{16, 2}, {8, 1}, {40, 5}, {1, 1}, {24, 3}};
  HessianAccumulator acc(features, GetParam());
  int total_tokens = 0, total_sequences = 0;
  std::vector<MatrixF> xs;
  for (size_t b = 0; b < batches.size(); ++b) {
    xs.push_back(RandomInputs(batches[b].tokens, features, 100 + static_cast<uint32_t>(b)));
    acc.AddBatch(xs.back(), batches[b].sequences);
    total_tokens += batches[b].tokens;
    total_sequences += batches[b].sequences;
  }
  MatrixF all(total_tokens, features);
  int row = 0;
  for (const MatrixF& x : xs) {
    all.middleRows(row, x.rows()) = x;
    row += static_cast<int>(x.rows());
  }
  EXPECT_EQ(acc.nsamples(), total_sequences);
  EXPECT_EQ(acc.tokens(), total_tokens);

  const MatrixD want = DirectHessian(all, total_sequences);
  const MatrixD got_d = acc.FinalizeDouble();
  const MatrixF got_f = acc.Finalize();
  const double tol = GetParam() == HessianAccumulator::Precision::kFloat64 ? 1e-12 : 1e-5;
  EXPECT_LE((got_d - want).cwiseAbs().maxCoeff() / want.cwiseAbs().maxCoeff(), tol);
  EXPECT_LE((got_f.cast<double>() - want).cwiseAbs().maxCoeff() / want.cwiseAbs().maxCoeff(),
            1e-5);
  // Exactly symmetric.
  EXPECT_EQ((got_f - got_f.transpose()).cwiseAbs().maxCoeff(), 0.0f);
  EXPECT_EQ((got_d - got_d.transpose()).cwiseAbs().maxCoeff(), 0.0);
}

TEST_P(HessianTest, EmptyBatchOnlyRescales) {
  HessianAccumulator acc(4, GetParam());
  const MatrixF x = RandomInputs(6, 4, 7);
  acc.AddBatch(x, 1);
  const MatrixD before = acc.FinalizeDouble();
  acc.AddBatch(MatrixF(0, 4), 1);  // one more (empty) sequence: H scales by 1/2
  EXPECT_LE((acc.FinalizeDouble() - 0.5 * before).cwiseAbs().maxCoeff(),
            1e-6 * before.cwiseAbs().maxCoeff());
  EXPECT_EQ(acc.nsamples(), 2);
  EXPECT_EQ(acc.tokens(), 6);
}

INSTANTIATE_TEST_SUITE_P(Precisions, HessianTest,
                         ::testing::Values(HessianAccumulator::Precision::kFloat32,
                                           HessianAccumulator::Precision::kFloat64));

TEST(HessianTest, Float32MatchesFloat64) {
  HessianAccumulator f32(32, HessianAccumulator::Precision::kFloat32);
  HessianAccumulator f64(32, HessianAccumulator::Precision::kFloat64);
  for (int b = 0; b < 6; ++b) {
    const MatrixF x = RandomInputs(64, 32, 500 + static_cast<uint32_t>(b));
    f32.AddBatch(x, 4);
    f64.AddBatch(x, 4);
  }
  const MatrixD a = f32.FinalizeDouble();
  const MatrixD b = f64.FinalizeDouble();
  EXPECT_LE((a - b).cwiseAbs().maxCoeff() / b.cwiseAbs().maxCoeff(), 1e-5);
}

TEST(HessianDeathTest, WrongWidthAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // OpenBLAS has started its threads
  HessianAccumulator acc(8);
  EXPECT_DEATH(acc.AddBatch(MatrixF::Zero(3, 5), 1), "input width");
}

}  // namespace
}  // namespace caliber
