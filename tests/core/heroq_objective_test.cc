// HeRo-Q's closed-form gradients against central finite differences of the loss along random
// directions (Euclidean for the diagonals' θ, Cayley curves for the rotations), and the loss
// value against an independent evaluation of its definition.
#include "core/transform/heroq_objective.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "core/transform/orthogonal.h"
#include "core/transform/transform_matrices.h"

namespace caliber {
namespace {

ModelConfig SmallConfig() {
  ModelConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 32;
  return c;
}

MatrixD Gaussian(int rows, int cols, std::mt19937_64& rng, double sd = 1.0) {
  std::normal_distribution<double> n(0.0, sd);
  MatrixD m(rows, cols);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) m(i, j) = n(rng);
  }
  return m;
}

// H = XᵀX/N with a few loud channels, as LLM activations have.
MatrixD Hessian(int n, std::mt19937_64& rng) {
  MatrixD X = Gaussian(4 * n, n, rng);
  X.col(1) *= 6.0;
  X.col(n - 2) *= 3.0;
  return X.transpose() * X / X.rows();
}

LayerProblem RandomProblem(const ModelConfig& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  LayerProblem p;
  const int d = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), f = c.intermediate_size;
  p.w = {Gaussian(q, d, rng), Gaussian(kv, d, rng), Gaussian(kv, d, rng), Gaussian(d, q, rng),
         Gaussian(f, d, rng), Gaussian(f, d, rng), Gaussian(d, f, rng)};
  p.h = {Hessian(d, rng), Hessian(q, rng), Hessian(d, rng), Hessian(f, rng)};
  ComputeEnergies(p);
  return p;
}

LayerTransform RandomTransform(const ModelConfig& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  LayerTransform t = IdentityLayerTransform(c);
  t.r2 = RandomizedHadamardOrOrthogonal(c.head_dim, seed + 1);
  t.log_attn = Gaussian(c.hidden_size, 1, rng, 0.3);
  t.log_mlp = Gaussian(c.hidden_size, 1, rng, 0.3);
  t.log_vo = Gaussian(c.kv_dim(), 1, rng, 0.3);
  t.log_ud = Gaussian(c.intermediate_size, 1, rng, 0.3);
  return t;
}

// R·(I − εS/2)⁻¹(I + εS/2): orthogonal for skew S, derivative R·S at ε = 0.
MatrixD Curve(const MatrixD& R, const MatrixD& S, double eps) {
  const MatrixD I = MatrixD::Identity(R.rows(), R.rows());
  return R * (I - eps / 2 * S).partialPivLu().solve(I + eps / 2 * S);
}

MatrixD RandomSkew(int n, std::mt19937_64& rng) {
  const MatrixD a = Gaussian(n, n, rng);
  return a - a.transpose();
}

double Dot(const MatrixD& a, const MatrixD& b) { return a.cwiseProduct(b).sum(); }

class HeroqGradientTest : public ::testing::TestWithParam<std::tuple<int, int, bool, int>> {};

TEST_P(HeroqGradientTest, MatchesFiniteDifferences) {
  const auto [bits, group, sym, act_bits] = GetParam();
  const ModelConfig c = SmallConfig();
  const LayerProblem p = RandomProblem(c, 11);
  const MatrixD r1 = RandomizedHadamardOrOrthogonal(c.hidden_size, 3);
  const LayerTransform t = RandomTransform(c, 5);
  HeroqObjectiveOptions o;
  o.bits = bits;
  o.group_size = group;
  o.sym = sym;
  o.lambda = 0.5;
  o.act_bits = act_bits;
  const LayerObjectiveValue v = EvaluateLayerObjective(c, p, r1, t, o, true);
  if (act_bits < 16) {
    EXPECT_GT(v.act[0], 0);
  }
  ASSERT_GT(v.loss, 0);
  auto loss = [&](const MatrixD& r1x, const LayerTransform& tx) {
    return EvaluateLayerObjective(c, p, r1x, tx, o, false).loss;
  };
  const double eps = 1e-6;
  std::mt19937_64 rng(99);
  auto expect_close = [&](double analytic, double numeric, const char* what) {
    EXPECT_NEAR(analytic, numeric, 1e-5 * std::max(1.0, std::abs(numeric))) << what;
  };
  for (int trial = 0; trial < 3; ++trial) {
    // R1 along a Cayley curve.
    const MatrixD s1 = RandomSkew(c.hidden_size, rng);
    expect_close(Dot(v.g_r1, r1 * s1),
                 (loss(Curve(r1, s1, eps), t) - loss(Curve(r1, s1, -eps), t)) / (2 * eps), "r1");
    // R2 along a Cayley curve.
    const MatrixD s2 = RandomSkew(c.head_dim, rng);
    LayerTransform tp = t, tm = t;
    tp.r2 = Curve(t.r2, s2, eps);
    tm.r2 = Curve(t.r2, s2, -eps);
    expect_close(Dot(v.grad.r2, t.r2 * s2), (loss(r1, tp) - loss(r1, tm)) / (2 * eps), "r2");
    // Each diagonal's θ in a random direction.
    struct Diag {
      VectorD LayerTransform::*field;
      const char* name;
    };
    for (const Diag dgl : {Diag{&LayerTransform::log_attn, "attn"}, Diag{&LayerTransform::log_mlp, "mlp"},
                           Diag{&LayerTransform::log_vo, "vo"}, Diag{&LayerTransform::log_ud, "ud"}}) {
      const VectorD u = Gaussian(static_cast<int>((t.*dgl.field).size()), 1, rng);
      LayerTransform a = t, b = t;
      a.*dgl.field += eps * u;
      b.*dgl.field -= eps * u;
      expect_close((v.grad.*dgl.field).dot(u), (loss(r1, a) - loss(r1, b)) / (2 * eps), dgl.name);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Grids, HeroqGradientTest,
                         ::testing::Values(std::make_tuple(4, 8, true, 16), std::make_tuple(3, -1, true, 16),
                                           std::make_tuple(4, 8, false, 16), std::make_tuple(2, 4, true, 16),
                                           std::make_tuple(4, 8, true, 8), std::make_tuple(3, -1, false, 4)));

TEST(HeroqObjectiveTest, ValueMatchesItsDefinition) {
  const ModelConfig c = SmallConfig();
  const LayerProblem p = RandomProblem(c, 21);
  const MatrixD r1 = RandomizedHadamardOrOrthogonal(c.hidden_size, 4);
  const LayerTransform t = RandomTransform(c, 6);
  HeroqObjectiveOptions o;
  o.group_size = 8;
  o.lambda = 0.25;
  const LayerObjectiveValue v = EvaluateLayerObjective(c, p, r1, t, o, false);
  // Independently: W̃ and H̃ from explicit inverses, Q by a per-entry transcription of
  // quant.py's symmetric grid, the output error measured in the original space:
  // ‖(Q(W̃) T⁻¹ − W) X‖² / ‖W X‖² = tr(F H Fᵀ)/tr(W H Wᵀ) with F = Q(W̃)·T⁻¹ − L⁻¹·... (L = I
  // for q).
  const LayerTransformMatrices m = BuildTransformMatrices(c, r1, t);
  const MatrixD Wt = p.w[0] * m.t_attn;
  MatrixD Q(Wt.rows(), Wt.cols());
  for (int i = 0; i < Wt.rows(); ++i) {
    for (int g = 0; g < Wt.cols(); g += 8) {
      const double a = Wt.row(i).segment(g, 8).cwiseAbs().maxCoeff();
      const bool neg = Wt.row(i).segment(g, 8).minCoeff() < 0;
      const double scale = (neg ? 2 * a : a) / 15.0;
      for (int j = g; j < g + 8; ++j) {
        double code = std::clamp(std::nearbyint(Wt(i, j) / scale) + 8.0, 0.0, 15.0);
        // The entry that sets the range is ±7.5 steps away in exact arithmetic: a tie that
        // rounds to even (-8 -> code 0; +8 clamped to 15).
        if (std::abs(Wt(i, j)) == a) code = Wt(i, j) < 0 && neg ? 0.0 : 15.0;
        Q(i, j) = scale * (code - 8.0);
      }
    }
  }
  EXPECT_LT((Q - RoundToNearestGrid(Wt, o)).cwiseAbs().maxCoeff(), 1e-12);
  const MatrixD F = Q * m.t_attn.inverse() - p.w[0];
  const double rel = Dot(F, F * p.h[0]) / Dot(p.w[0], p.w[0] * p.h[0]);
  EXPECT_NEAR(v.quant[0], rel, 1e-9 * rel);
  // Spectral term: the exact top eigenvalue of H̃ over its trace.
  const MatrixD ht = m.m_attn * p.h[0] * m.m_attn.transpose();
  Eigen::SelfAdjointEigenSolver<MatrixD> es(ht);
  EXPECT_NEAR(v.spectral[0], es.eigenvalues().maxCoeff() / ht.trace(), 1e-9);
  double expected_loss = 0;
  for (double q : v.quant) expected_loss += q;
  for (double s : v.spectral) expected_loss += o.lambda * s;
  EXPECT_NEAR(v.loss, expected_loss, 1e-12);
}

TEST(HeroqObjectiveTest, ActivationTermMatchesItsDefinition) {
  const ModelConfig c = SmallConfig();
  const LayerProblem p = RandomProblem(c, 23);
  const MatrixD r1 = RandomizedHadamardOrOrthogonal(c.hidden_size, 7);
  const LayerTransform t = RandomTransform(c, 8);
  HeroqObjectiveOptions o;
  o.group_size = 8;
  const LayerObjectiveValue plain = EvaluateLayerObjective(c, p, r1, t, o, false);
  o.act_bits = 8;
  const LayerObjectiveValue v = EvaluateLayerObjective(c, p, r1, t, o, false);
  // For q_proj: S_8 of diag(M H Mᵀ) times ‖W T‖², over 12·127²·tr(W H Wᵀ).
  const LayerTransformMatrices m = BuildTransformMatrices(c, r1, t);
  const MatrixD ht = m.m_attn * p.h[0] * m.m_attn.transpose();
  double sum8 = 0;
  for (int j = 0; j < ht.rows(); ++j) sum8 += std::pow(ht(j, j), 8);
  const double smax = std::pow(sum8, 1.0 / 8);
  EXPECT_GE(smax, ht.diagonal().maxCoeff());
  const double expect = smax * (p.w[0] * m.t_attn).squaredNorm() / (12.0 * 127 * 127 * Dot(p.w[0], p.w[0] * p.h[0]));
  EXPECT_NEAR(v.act[0], expect, 1e-9 * expect);
  double added = 0;
  for (double a : v.act) added += a;
  EXPECT_NEAR(v.loss, plain.loss + added, 1e-12);
  EXPECT_EQ(plain.act[0], 0.0);
}

TEST(HeroqObjectiveTest, RotationsLeaveTheSpectrumAlone) {
  const ModelConfig c = SmallConfig();
  const LayerProblem p = RandomProblem(c, 31);
  HeroqObjectiveOptions o;
  o.group_size = 8;
  const LayerTransform id = IdentityLayerTransform(c);
  LayerTransform rot = id;
  rot.r2 = RandomizedHadamardOrOrthogonal(c.head_dim, 9);
  const MatrixD r1 = RandomizedHadamardOrOrthogonal(c.hidden_size, 8);
  const LayerObjectiveValue a = EvaluateLayerObjective(c, p, MatrixD::Identity(16, 16), id, o, false);
  const LayerObjectiveValue b = EvaluateLayerObjective(c, p, r1, rot, o, false);
  for (int g = 0; g < 4; ++g) EXPECT_NEAR(a.spectral[g], b.spectral[g], 1e-9) << g;
}

TEST(OrthogonalTest, HadamardAndRandomAreOrthogonalAndSeeded) {
  for (int n : {1, 2, 32, 256, 12, 48}) {
    const MatrixD R = RandomizedHadamardOrOrthogonal(n, 17);
    EXPECT_LT((R * R.transpose() - MatrixD::Identity(n, n)).cwiseAbs().maxCoeff(), 1e-12) << n;
    EXPECT_EQ(R, RandomizedHadamardOrOrthogonal(n, 17));
    if (n > 2) {
      EXPECT_NE(R, RandomizedHadamardOrOrthogonal(n, 18));
    }
    if (IsPowerOfTwo(n)) {
      // Every entry ±1/√n: the flattest possible rotation.
      EXPECT_LT((R.cwiseAbs().array() - 1.0 / std::sqrt(double(n))).abs().maxCoeff(), 1e-15);
    }
  }
}

TEST(OrthogonalTest, CayleyStepStaysOrthogonalAndDescends) {
  // Minimize ‖R − Target‖² over rotations: G = 2(R − Target).
  std::mt19937_64 rng(3);
  const MatrixD target = RandomizedHadamardOrOrthogonal(10, 1);
  MatrixD R = MatrixD::Identity(10, 10);
  double prev = (R - target).squaredNorm();
  for (int it = 0; it < 200; ++it) {
    const MatrixD G = 2 * (R - target);
    R = CayleyStep(R, G, 0.05);
    EXPECT_LT((R * R.transpose() - MatrixD::Identity(10, 10)).cwiseAbs().maxCoeff(), 1e-10);
    const double now = (R - target).squaredNorm();
    EXPECT_LE(now, prev + 1e-12);
    prev = now;
  }
  // det(target) may be −1 (unreachable from I); the descent still ends at a critical point.
  EXPECT_LT(RiemannianGradientNorm(R, 2 * (R - target)), 1e-3);
}

}  // namespace
}  // namespace caliber
