// GPTQ against a naive transcription of the reference gptq.py `fasterquant` written here:
// column by column with every update applied at once (no lazy blocks), Hinv from Eigen in
// double, and quant.py's grid spelled out per element. The only trace of the block size in the
// naive version is the reference quirk it must reproduce: a group's grid is computed from W as
// it stood at the start of the current block.
//
// Two float implementations of the same algorithm can round a value sitting on a .5 boundary
// differently, after which that row legitimately diverges. So the comparison walks each row in
// quantization order: until the first differing code everything must agree to float accuracy,
// and a first difference is only accepted where the naive value w/scale is within a hair of a
// rounding tie.
#include "core/quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "core/quant/quantizer.h"
#include "core/quant/rtn.h"

namespace caliber {
namespace {

using ::testing::HasSubstr;

// ---- quant.py, per element -------------------------------------------------------------

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

// ---- gptq.py fasterquant, unblocked ------------------------------------------------------

struct NaiveGptq {
  Eigen::MatrixXf Q;       // [out x n], original column order
  Eigen::MatrixXi codes;   // [out x n], original column order
  Eigen::MatrixXf ratio;   // [out x n], w / scale before rounding, in quantization order
  std::vector<int> perm;   // quantization order
  std::vector<RefGrid> grids;
  std::vector<int> g_idx;
  Eigen::MatrixXf tail;    // the un-quantized columns after the sweep
  double damp_used = 0;
};

NaiveGptq RunNaive(const MatrixF& W_in, const MatrixF& H_in, int n, const QuantSpec& s) {
  Eigen::MatrixXf W = W_in;
  Eigen::MatrixXf H = H_in;
  const int out = static_cast<int>(W.rows()), cols = static_cast<int>(W.cols());
  const float maxq = static_cast<float>((1 << s.bits) - 1);
  const bool per_channel = s.group_size == -1;
  const int gs = per_channel ? n : s.group_size;
  NaiveGptq res;
  res.grids.resize(static_cast<size_t>(per_channel ? 1 : (n + gs - 1) / gs));

  if (per_channel) res.grids[0] = RefFindParams(W.leftCols(n), s.bits, s.sym);
  for (int i = 0; i < cols; ++i) {
    if (H(i, i) == 0) {
      H(i, i) = 1;
      W.col(i).setZero();
    }
  }
  if (s.static_groups && !per_channel) {
    for (size_t g = 0; g < res.grids.size(); ++g) {
      const int b = static_cast<int>(g) * gs;
      res.grids[g] = RefFindParams(W.middleCols(b, std::min(gs, n - b)), s.bits, s.sym);
    }
  }
  res.perm.resize(static_cast<size_t>(cols));
  std::iota(res.perm.begin(), res.perm.end(), 0);
  if (s.act_order) {
    std::stable_sort(res.perm.begin(), res.perm.begin() + n,
                     [&](int a, int b) { return H(a, a) > H(b, b); });
  }
  Eigen::MatrixXf Wp(out, cols), Hp(cols, cols);
  for (int a = 0; a < cols; ++a) {
    Wp.col(a) = W.col(res.perm[static_cast<size_t>(a)]);
    for (int b = 0; b < cols; ++b) {
      Hp(a, b) = H(res.perm[static_cast<size_t>(a)], res.perm[static_cast<size_t>(b)]);
    }
  }

  // Hinv = cholesky(cholesky_inverse(cholesky(H + damp I)), upper), here in double.
  Eigen::MatrixXd Hd = Hp.cast<double>();
  const double damp = s.damp * Hd.diagonal().mean();
  Hd.diagonal().array() += damp;
  res.damp_used = s.damp;
  const Eigen::MatrixXd Hinv_full = Hd.llt().solve(Eigen::MatrixXd::Identity(cols, cols));
  const Eigen::MatrixXd U = Hinv_full.llt().matrixU();

  Eigen::MatrixXf Qp(out, n);
  Eigen::MatrixXi Cp(out, n);
  res.ratio.resize(out, n);
  Eigen::MatrixXf snapshot = Wp;  // W as gptq.py's `W` sees it: updated only between blocks
  const RefGrid* grid = per_channel ? &res.grids[0] : nullptr;
  for (int p = 0; p < n; ++p) {
    if (p % s.block_size == 0) snapshot = Wp;
    if (!per_channel) {
      if (s.static_groups) {
        grid = &res.grids[static_cast<size_t>(res.perm[static_cast<size_t>(p)] / gs)];
      } else if (p % gs == 0) {
        res.grids[static_cast<size_t>(p / gs)] =
            RefFindParams(snapshot.middleCols(p, std::min(gs, n - p)), s.bits, s.sym);
        grid = &res.grids[static_cast<size_t>(p / gs)];
      }
    }
    const float d = static_cast<float>(U(p, p));
    Eigen::VectorXf err(out);
    for (int r = 0; r < out; ++r) {
      const float scale = grid->scale[static_cast<size_t>(r)];
      const float zero = grid->zero[static_cast<size_t>(r)];
      volatile float ratio = Wp(r, p) / scale;
      res.ratio(r, p) = ratio;
      const float code =
          std::min(std::max(std::nearbyint(static_cast<float>(ratio)) + zero, 0.0f), maxq);
      volatile float q = scale * (code - zero);
      Qp(r, p) = static_cast<float>(q);
      Cp(r, p) = static_cast<int>(code);
      err[r] = (Wp(r, p) - static_cast<float>(q)) / d;
    }
    for (int j = p + 1; j < cols; ++j) Wp.col(j) -= err * static_cast<float>(U(p, j));
  }

  res.Q.resize(out, n);
  res.codes.resize(out, n);
  res.g_idx.assign(static_cast<size_t>(n), 0);
  for (int p = 0; p < n; ++p) {
    const int col = res.perm[static_cast<size_t>(p)];
    res.Q.col(col) = Qp.col(p);
    res.codes.col(col) = Cp.col(p);
    if (!per_channel) res.g_idx[static_cast<size_t>(col)] = (s.static_groups ? col : p) / gs;
  }
  res.tail = Wp.rightCols(cols - n);
  return res;
}

// ---- comparison --------------------------------------------------------------------------

// How far a naive pre-rounding value may sit from a .5 tie for two float implementations to
// round it differently (their inputs differ by accumulated float error, far below this).
constexpr float kTieTolerance = 2e-3f;

// Returns the number of rows that diverged (at a tie).
// κ(H + damp·mean(diag H)·I), dead columns' H_ii set to 1 first: the matrix both
// implementations factor and invert.
double DampedCondition(const MatrixF& H, double damp) {
  Eigen::MatrixXd Hd = H.cast<double>();
  for (Eigen::Index i = 0; i < Hd.rows(); ++i) {
    if (Hd(i, i) == 0) Hd(i, i) = 1;
  }
  Hd.diagonal().array() += damp * Hd.diagonal().mean();
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(Hd, Eigen::EigenvaluesOnly);
  return es.eigenvalues().maxCoeff() / es.eigenvalues().minCoeff();
}

int ExpectAgreement(const QuantizedLinear& got, const NaiveGptq& want, const QuantSpec& spec,
                    const MatrixF& H) {
  const int out = got.out_features, n = got.in_features;
  EXPECT_EQ(got.g_idx, want.g_idx);
  EXPECT_EQ(got.num_groups(), static_cast<int>(want.grids.size()));
  const MatrixF Q = got.Dequantize();
  const int gs = spec.group_size == -1 ? n : spec.group_size;
  // Per-channel and static grids come from the original W, so equal codes dequantize to
  // identical floats. A dynamic grid comes from W after error feedback through Hinv, which is
  // float32 here (as in gptq.py) and double in the reference: a backward-stable Cholesky
  // inverse is good to κ·u_f relative (first order), κ = cond(H + damp), whatever BLAS's
  // summation order (κ ≈ 6.6e3 here: 3.9e-4; measured up to 1.4e-5 at 2 bits).
  const bool from_original = spec.static_groups || spec.group_size == -1;
  const float rel_tol = from_original ? 0.0f
                                      : static_cast<float>(DampedCondition(H, spec.damp) *
                                                           std::numeric_limits<float>::epsilon() / 2);
  int diverged = 0;
  for (int r = 0; r < out; ++r) {
    int first = n;
    for (int p = 0; p < n; ++p) {
      const int col = want.perm[static_cast<size_t>(p)];
      if (got.codes(r, col) != want.codes(r, col)) {
        first = p;
        break;
      }
      const float scale = got.scales(got.g_idx[static_cast<size_t>(col)], r);
      EXPECT_NEAR(Q(r, col), want.Q(r, col), rel_tol * std::max(std::fabs(want.Q(r, col)), scale))
          << "row " << r << " col " << col;
    }
    if (first < n) {
      ++diverged;
      const float x = want.ratio(r, first);
      const float to_tie = std::fabs(std::fabs(x - std::floor(x)) - 0.5f);
      EXPECT_LT(to_tie, kTieTolerance)
          << "row " << r << " first differs at position " << first << " (column "
          << want.perm[static_cast<size_t>(first)] << ") where w/scale = " << x
          << " is no rounding tie: got code "
          << int{got.codes(r, want.perm[static_cast<size_t>(first)])} << ", want "
          << want.codes(r, want.perm[static_cast<size_t>(first)]);
    }
    // Grids: static and per-channel ones come from the original W (bit-exact); a dynamic one
    // must agree when its row had not diverged before the group started.
    for (int g = 0; g < got.num_groups(); ++g) {
      if (!from_original && first <= g * gs) continue;
      const float ws = want.grids[static_cast<size_t>(g)].scale[static_cast<size_t>(r)];
      const float wz = want.grids[static_cast<size_t>(g)].zero[static_cast<size_t>(r)];
      if (from_original) {
        EXPECT_EQ(got.scales(g, r), ws) << "group " << g << " row " << r;
      } else {
        EXPECT_NEAR(got.scales(g, r), ws, rel_tol * ws) << "group " << g << " row " << r;
      }
      EXPECT_EQ(got.zeros(g, r), static_cast<int>(wz)) << "group " << g << " row " << r;
    }
  }
  EXPECT_LE(diverged, std::max(1, out / 10)) << "too many rows hit rounding ties";
  return diverged;
}

// Calibration inputs with a few dominant directions and uneven feature scales, as LLM
// activations have: GPTQ has correlations to exploit and act_order a non-trivial order.
MatrixF CorrelatedInputs(int tokens, int features, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int k = 4;
  MatrixF dirs(k, features), coeff(tokens, k), x(tokens, features);
  for (float& v : dirs.reshaped()) v = normal(rng);
  for (float& v : coeff.reshaped()) v = 2.0f * normal(rng);
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

struct GptqCase {
  int bits;
  int group;
  int block;
  bool sym;
  bool act_order;
  bool static_groups;
};

std::string CaseName(const ::testing::TestParamInfo<GptqCase>& param_info) {
  const GptqCase& c = param_info.param;
  const std::string group = c.group == -1 ? std::string("pc") : std::to_string(c.group);
  return absl::StrCat("w", c.bits, "_g", group, "_b", c.block, c.sym ? "_sym" : "_asym",
                      c.act_order ? "_act" : "", c.static_groups ? "_static" : "");
}

class GptqVsNaiveTest : public ::testing::TestWithParam<GptqCase> {};

TEST_P(GptqVsNaiveTest, MatchesUnblockedReference) {
  const GptqCase c = GetParam();
  const int out = 40, in = 256;
  const MatrixF W = RandomWeights(out, in, 1000 + static_cast<uint32_t>(c.bits * 7 + c.block));
  const MatrixF H = HessianOf(CorrelatedInputs(768, in, 77));
  QuantSpec spec;
  spec.bits = c.bits;
  spec.group_size = c.group;
  spec.block_size = c.block;
  spec.sym = c.sym;
  spec.act_order = c.act_order;
  spec.static_groups = c.static_groups;
  absl::StatusOr<QuantizedLinear> got = GptqQuantize(W, H, spec);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->report.cholesky_retries, 0);
  EXPECT_EQ(got->report.damp_used, spec.damp);
  const NaiveGptq want = RunNaive(W, H, in, spec);
  const int diverged = ExpectAgreement(*got, want, spec, H);
  RecordProperty("diverged_rows", diverged);
  const int maxq = (1 << c.bits) - 1;
  EXPECT_LE(got->codes.maxCoeff(), maxq);
}

INSTANTIATE_TEST_SUITE_P(
    Configs, GptqVsNaiveTest,
    ::testing::Values(GptqCase{4, -1, 128, true, false, false},
                      GptqCase{3, -1, 128, false, true, false},
                      GptqCase{2, -1, 32, true, false, false},
                      GptqCase{4, 128, 128, true, false, false},
                      GptqCase{4, 64, 128, false, false, false},   // groups inside a block
                      GptqCase{3, 32, 128, true, false, false},
                      GptqCase{4, 32, 48, true, false, false},     // groups straddle blocks
                      GptqCase{3, 64, 16, false, false, false},    // groups span blocks
                      GptqCase{4, 128, 128, true, true, false},
                      GptqCase{3, 64, 128, false, true, false},
                      GptqCase{2, 64, 32, true, true, false},
                      GptqCase{4, 32, 128, true, false, true},
                      GptqCase{3, 64, 128, false, true, true},
                      GptqCase{4, 128, 64, true, true, true},
                      GptqCase{8, 128, 128, true, false, false},
                      GptqCase{8, 64, 128, false, true, false}),
    CaseName);

TEST(GptqTest, DeadColumnsQuantizeToZero) {
  const int out = 24, in = 128;
  // Scaled so that diag(H) < 1: the dead columns (H_ii set to 1) come first in act-order.
  MatrixF X = 0.05f * CorrelatedInputs(512, in, 5);
  X.col(3).setZero();
  X.col(70).setZero();
  const MatrixF H = HessianOf(X);
  const MatrixF W = RandomWeights(out, in, 6);
  for (bool act_order : {false, true}) {
    QuantSpec spec;
    spec.group_size = 32;
    spec.act_order = act_order;
    absl::StatusOr<QuantizedLinear> got = GptqQuantize(W, H, spec);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->report.dead_columns, 2);
    const MatrixF Q = got->Dequantize();
    EXPECT_EQ(Q.col(3).cwiseAbs().maxCoeff(), 0.0f);
    EXPECT_EQ(Q.col(70).cwiseAbs().maxCoeff(), 0.0f);
    ExpectAgreement(*got, RunNaive(W, H, in, spec), spec, H);
  }
}

TEST(GptqTest, PerChannelGridIsTakenBeforeDeadColumnsAreZeroed) {
  const int out = 8, in = 64;
  MatrixF X = CorrelatedInputs(256, in, 9);
  X.col(0).setZero();
  MatrixF W = RandomWeights(out, in, 10);
  W.col(0).setConstant(1.0f);  // the largest weights sit in the dead column
  QuantSpec spec;
  spec.group_size = -1;
  absl::StatusOr<QuantizedLinear> got = GptqQuantize(W, HessianOf(X), spec);
  ASSERT_TRUE(got.ok()) << got.status();
  for (int r = 0; r < out; ++r) EXPECT_EQ(got->scales(0, r), 2.0f / 15.0f);  // from |1.0|
}

// An indefinite H: 1% damping leaves a negative eigenvalue, 10% does not.
MatrixF IndefiniteHessian(int in) {
  const MatrixF H = HessianOf(CorrelatedInputs(512, in, 21));
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(H.cast<double>());
  const double mean = H.cast<double>().diagonal().mean();
  const double shift = eig.eigenvalues()[0] + 0.05 * mean;  // λmin becomes -0.05·mean
  MatrixD shifted = H.cast<double>();
  shifted.diagonal().array() -= shift;
  return shifted.cast<float>();
}

TEST(GptqTest, RetriesCholeskyWithTenfoldDamping) {
  const int in = 64;
  const MatrixF H = IndefiniteHessian(in);
  const MatrixF W = RandomWeights(16, in, 22);
  QuantSpec spec;
  spec.group_size = 32;
  absl::StatusOr<QuantizedLinear> got = GptqQuantize(W, H, spec);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->report.cholesky_retries, 1);
  EXPECT_NEAR(got->report.damp_used, 0.1, 1e-12);

  spec.max_damp_retries = 0;
  absl::StatusOr<QuantizedLinear> failed = GptqQuantize(W, H, spec);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(failed.status().message(), HasSubstr("Cholesky failed after 0 retries (damp=0.01)"));
}

TEST(GptqTest, BeatsRtnOnCorrelatedInputs) {
  const int out = 64, in = 256;
  const MatrixF H = HessianOf(CorrelatedInputs(1024, in, 31));
  const MatrixF W = RandomWeights(out, in, 32);
  for (int bits : {3, 4}) {
    for (int group : {-1, 128}) {
      QuantSpec spec;
      spec.bits = bits;
      spec.group_size = group;
      absl::StatusOr<QuantizedLinear> gptq = FindQuantizer("gptq")->Quantize(W, H, spec);
      absl::StatusOr<QuantizedLinear> rtn = FindQuantizer("rtn")->Quantize(W, H, spec);
      ASSERT_TRUE(gptq.ok()) << gptq.status();
      ASSERT_TRUE(rtn.ok()) << rtn.status();
      EXPECT_LT(gptq->report.objective_after, 0.7 * rtn->report.objective_after)
          << "bits " << bits << " group " << group;
      EXPECT_EQ(gptq->report.method, "gptq");
      EXPECT_GT(gptq->report.relative_error, 0.0);
      EXPECT_LT(gptq->report.relative_error, rtn->report.relative_error);
      EXPECT_NEAR(gptq->report.objective_after,
                  LayerObjective(W, gptq->Dequantize(), H), 1e-12 * gptq->report.objective_after);
    }
  }
}

TEST(GptqTest, RejectsMismatchedShapes) {
  const MatrixF W = RandomWeights(8, 64, 1);
  absl::StatusOr<QuantizedLinear> got = GptqQuantize(W, MatrixF::Identity(32, 32), QuantSpec());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(got.status().message(), HasSubstr("H is 32x32 but W has 64 columns"));
}

}  // namespace
}  // namespace caliber
