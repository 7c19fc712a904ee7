// GPTQ-intrinsic LoRA against a naive augmented GPTQ written here: A from Eigen's own
// eigensolver, H_aug assembled in double, and the unblocked gptq.py column loop over [W, 0]
// quantizing only the first `in` columns. Also: it must beat plain GPTQ, and B·A has rank <= r.
#include "core/quant/gptq_lora.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/quant/gptq.h"
#include "core/quant/quantizer.h"

namespace caliber {
namespace {

struct RefGrid {
  std::vector<float> scale, zero;
};

RefGrid RefFindParams(const Eigen::MatrixXf& x, int bits, bool sym) {
  const float maxq = static_cast<float>((1 << bits) - 1);
  RefGrid g;
  for (int r = 0; r < x.rows(); ++r) {
    float xmin = std::min(x.row(r).minCoeff(), 0.0f);
    float xmax = std::max(x.row(r).maxCoeff(), 0.0f);
    if (sym) {
      xmax = std::max(std::fabs(xmin), xmax);
      if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) {
      xmin = -1;
      xmax = 1;
    }
    volatile float scale = (xmax - xmin) / maxq;
    volatile float ratio = -xmin / scale;
    g.scale.push_back(static_cast<float>(scale));
    g.zero.push_back(sym ? (maxq + 1) / 2 : std::nearbyint(static_cast<float>(ratio)));
  }
  return g;
}

// gptq.py fasterquant over W [out x cols], quantizing the first n columns (no act-order, no
// static groups: the configurations this test uses), column by column.
struct NaiveResult {
  Eigen::MatrixXi codes;   // [out x n]
  Eigen::MatrixXf ratio;   // w / scale before rounding
  Eigen::MatrixXf tail;    // [out x (cols - n)]
};

NaiveResult NaiveAugmentedGptq(Eigen::MatrixXf W, Eigen::MatrixXd H, int n, const QuantSpec& s) {
  const int out = static_cast<int>(W.rows()), cols = static_cast<int>(W.cols());
  const float maxq = static_cast<float>((1 << s.bits) - 1);
  const int gs = s.group_size == -1 ? n : s.group_size;
  RefGrid grid;
  if (s.group_size == -1) grid = RefFindParams(W.leftCols(n), s.bits, s.sym);
  H.diagonal().array() += s.damp * H.diagonal().mean();
  const Eigen::MatrixXd Hinv = H.llt().solve(Eigen::MatrixXd::Identity(cols, cols));
  const Eigen::MatrixXd U = Hinv.llt().matrixU();
  NaiveResult res{Eigen::MatrixXi(out, n), Eigen::MatrixXf(out, n), {}};
  Eigen::MatrixXf snapshot = W;
  for (int p = 0; p < n; ++p) {
    if (p % s.block_size == 0) snapshot = W;
    if (s.group_size != -1 && p % gs == 0) {
      grid = RefFindParams(snapshot.middleCols(p, std::min(gs, n - p)), s.bits, s.sym);
    }
    const float d = static_cast<float>(U(p, p));
    Eigen::VectorXf err(out);
    for (int r = 0; r < out; ++r) {
      const float scale = grid.scale[static_cast<size_t>(r)];
      const float zero = grid.zero[static_cast<size_t>(r)];
      volatile float ratio = W(r, p) / scale;
      res.ratio(r, p) = ratio;
      const float code =
          std::min(std::max(std::nearbyint(static_cast<float>(ratio)) + zero, 0.0f), maxq);
      volatile float q = scale * (code - zero);
      res.codes(r, p) = static_cast<int>(code);
      err[r] = (W(r, p) - static_cast<float>(q)) / d;
    }
    for (int j = p + 1; j < cols; ++j) W.col(j) -= err * static_cast<float>(U(p, j));
  }
  res.tail = W.rightCols(cols - n);
  return res;
}

MatrixF CorrelatedInputs(int tokens, int features, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int k = 6;
  MatrixF dirs(k, features), coeff(tokens, k), x(tokens, features);
  for (float& v : dirs.reshaped()) v = normal(rng);
  for (int t = 0; t < tokens; ++t) {
    for (int j = 0; j < k; ++j) coeff(t, j) = (4.0f - 0.5f * static_cast<float>(j)) * normal(rng);
  }
  for (float& v : x.reshaped()) v = normal(rng);
  x += coeff * dirs;
  for (int f = 0; f < features; ++f) x.col(f) *= std::exp(0.5f * normal(rng));
  return x;
}

MatrixF HessianOf(const MatrixF& x) {
  MatrixF h = (2.0f / static_cast<float>(x.rows())) * (x.transpose() * x);
  return (0.5f * (h + h.transpose())).eval();
}

MatrixF RandomWeights(int out, int in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  MatrixF w(out, in);
  for (float& v : w.reshaped()) v = normal(rng);
  return w;
}

// Top-r eigenvectors as rows, largest-magnitude entry positive: Eigen's solver, not LAPACK's.
Eigen::MatrixXd ReferenceBasis(const MatrixF& H, int r) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(H.cast<double>());
  const int n = static_cast<int>(H.rows());
  Eigen::MatrixXd A(r, n);
  for (int k = 0; k < r; ++k) {
    Eigen::VectorXd v = eig.eigenvectors().col(n - 1 - k);
    Eigen::Index arg;
    v.cwiseAbs().maxCoeff(&arg);
    if (v[arg] < 0) v = -v;
    A.row(k) = v.transpose();
  }
  return A;
}

struct LoraCase {
  int bits;
  int group;
  int rank;
  int a_bits;
};

class GptqLoraTest : public ::testing::TestWithParam<LoraCase> {};

TEST_P(GptqLoraTest, EqualsNaiveAugmentedGptqAndBeatsGptq) {
  const LoraCase c = GetParam();
  const int out = 32, in = 128;
  const MatrixF H = HessianOf(CorrelatedInputs(512, in, 3));
  const MatrixF W = RandomWeights(out, in, 4);
  QuantSpec spec;
  spec.bits = c.bits;
  spec.group_size = c.group;
  spec.lora_rank = c.rank;
  spec.lora_a_bits = c.a_bits;
  absl::StatusOr<QuantizedLinear> got = GptqLoraQuantize(W, H, spec);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->lora_a.rows(), c.rank);
  ASSERT_EQ(got->lora_a.cols(), in);
  ASSERT_EQ(got->lora_b.rows(), out);
  ASSERT_EQ(got->lora_b.cols(), c.rank);
  EXPECT_EQ(got->report.method, "gptq_lora");

  // A: the top eigenvectors of H (before quantization of A).
  const Eigen::MatrixXd A_ref = ReferenceBasis(H, c.rank);
  if (c.a_bits == 0) {
    EXPECT_LE((got->lora_a.cast<double>() - A_ref).cwiseAbs().maxCoeff(), 1e-5);
  } else {
    // Each row lies on a symmetric grid: scale * (integer - 2^(a_bits-1)) with 2^a_bits levels.
    const double half = 1 << (c.a_bits - 1);
    for (int k = 0; k < c.rank; ++k) {
      const double amax = A_ref.row(k).cwiseAbs().maxCoeff();
      const double scale = 2 * amax / ((1 << c.a_bits) - 1);
      for (int i = 0; i < in; ++i) {
        const double level = got->lora_a(k, i) / scale + half;
        EXPECT_NEAR(level, std::nearbyint(level), 1e-3);
        EXPECT_NEAR(got->lora_a(k, i), A_ref(k, i), 0.5 * scale + 1e-6);
      }
    }
  }

  // The naive augmented problem, built from the A the quantizer used.
  const Eigen::MatrixXd A = got->lora_a.cast<double>();
  const Eigen::MatrixXd Hd = H.cast<double>();
  Eigen::MatrixXd H_aug(in + c.rank, in + c.rank);
  H_aug << Hd, Hd * A.transpose(), A * Hd, A * Hd * A.transpose();
  H_aug = (0.5 * (H_aug + H_aug.transpose())).eval();
  Eigen::MatrixXf W_aug = Eigen::MatrixXf::Zero(out, in + c.rank);
  W_aug.leftCols(in) = W;
  const NaiveResult want = NaiveAugmentedGptq(W_aug, H_aug, in, spec);

  // B is the tail columns after error feedback through Hinv of H_aug + damp, float32 in the
  // quantizer and double here: a backward-stable Cholesky inverse is good to κ·u_f relative
  // (first order), κ = cond(H_aug + damp), whatever BLAS's summation order.
  Eigen::MatrixXd H_damped = H_aug;
  H_damped.diagonal().array() += spec.damp * H_damped.diagonal().mean();
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(H_damped, Eigen::EigenvaluesOnly);
  const float b_tol = static_cast<float>(es.eigenvalues().maxCoeff() / es.eigenvalues().minCoeff() *
                                         std::numeric_limits<float>::epsilon() / 2);
  int diverged = 0;
  for (int r = 0; r < out; ++r) {
    int first = in;
    for (int i = 0; i < in; ++i) {
      if (got->codes(r, i) != want.codes(r, i)) {
        first = i;
        break;
      }
    }
    if (first < in) {
      ++diverged;
      const float x = want.ratio(r, first);
      EXPECT_LT(std::fabs(std::fabs(x - std::floor(x)) - 0.5f), 2e-3f)
          << "row " << r << " differs at column " << first << " away from a rounding tie";
      continue;
    }
    const Eigen::VectorXf b_got = got->lora_b.row(r).transpose();
    const Eigen::VectorXf b_want = want.tail.row(r).transpose();
    EXPECT_LE((b_got - b_want).norm(), b_tol * b_want.norm() + 1e-7f) << "row " << r;
  }
  EXPECT_LE(diverged, out / 10);

  // Strictly better than plain GPTQ at the same bits.
  QuantSpec plain = spec;
  plain.lora_rank = 0;
  plain.lora_a_bits = 0;
  absl::StatusOr<QuantizedLinear> gptq = GptqQuantize(W, H, plain);
  ASSERT_TRUE(gptq.ok()) << gptq.status();
  const double lora_objective = LayerObjective(W, got->Reconstruct(), H);
  const double gptq_objective = LayerObjective(W, gptq->Dequantize(), H);
  EXPECT_LT(lora_objective, 0.9 * gptq_objective);

  // rank(B·A) <= r.
  const Eigen::MatrixXd BA = got->lora_b.cast<double>() * got->lora_a.cast<double>();
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(BA);
  const Eigen::VectorXd sv = svd.singularValues();
  for (int k = c.rank; k < sv.size(); ++k) EXPECT_LE(sv[k], 1e-6 * sv[0]);
}

INSTANTIATE_TEST_SUITE_P(Configs, GptqLoraTest,
                         ::testing::Values(LoraCase{4, -1, 4, 0}, LoraCase{3, 32, 4, 0},
                                           LoraCase{2, 64, 6, 0}, LoraCase{4, 128, 2, 0},
                                           LoraCase{3, 64, 4, 4}, LoraCase{2, -1, 6, 8}));

TEST(GptqLoraRegistryTest, RefinementNeverIncreasesTheObjective) {
  const int out = 24, in = 96;
  const MatrixF H = HessianOf(CorrelatedInputs(384, in, 8));
  const MatrixF W = RandomWeights(out, in, 9);
  for (int a_bits : {0, 4}) {
    QuantSpec spec;
    spec.bits = 3;
    spec.group_size = 32;
    spec.lora_rank = 4;
    spec.lora_a_bits = a_bits;
    const LinearQuantizer* method = FindQuantizer("gptq_lora");
    absl::StatusOr<QuantizedLinear> base = method->Quantize(W, H, spec);
    ASSERT_TRUE(base.ok()) << base.status();
    EXPECT_TRUE(base->report.refine_objectives.empty());
    spec.refine_iters = 3;
    absl::StatusOr<QuantizedLinear> refined = method->Quantize(W, H, spec);
    ASSERT_TRUE(refined.ok()) << refined.status();
    const std::vector<double>& obj = refined->report.refine_objectives;
    ASSERT_GE(obj.size(), 3u);  // start, then (Bid-Up, OLrC) pairs, at most 3 of them
    ASSERT_LE(obj.size(), 1u + 2u * 3u);
    ASSERT_EQ(obj.size() % 2, 1u);
    EXPECT_NEAR(obj.front(), base->report.objective_after, 1e-6 * obj.front());
    for (size_t k = 1; k < obj.size(); ++k) EXPECT_LE(obj[k], obj[k - 1]) << "step " << k;
    EXPECT_LT(obj.back(), obj.front());
    EXPECT_NEAR(refined->report.objective_after, obj.back(), 1e-5 * obj.back());
    if (a_bits > 0) {
      // A is still on a per-row symmetric 4-bit grid after refinement.
      for (int k = 0; k < refined->lora_a.rows(); ++k) {
        const double amax = refined->lora_a.row(k).cwiseAbs().maxCoeff();
        std::vector<float> levels(refined->lora_a.row(k).data(),
                                  refined->lora_a.row(k).data() + in);
        std::sort(levels.begin(), levels.end());
        levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
        EXPECT_LE(levels.size(), 16u);
        EXPECT_GT(amax, 0);
      }
    }
  }
}

TEST(GptqLoraRegistryTest, RejectsMissingRank) {
  const MatrixF W = RandomWeights(8, 64, 1);
  const MatrixF H = HessianOf(CorrelatedInputs(128, 64, 2));
  absl::StatusOr<QuantizedLinear> q = FindQuantizer("gptq_lora")->Quantize(W, H, QuantSpec());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(q.status().message(), ::testing::HasSubstr("lora_rank > 0"));
}

}  // namespace
}  // namespace caliber
