// One test per decoder-layer op, each against a naive double-precision transcription.
#include <cmath>
#include <numbers>
#include <random>

#include "core/model/ops.h"
#include "core/model/rope.h"
#include "gtest/gtest.h"

namespace caliber {
namespace {

MatrixF Random(int rows, int cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  MatrixF m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
  return m;
}

TEST(Ops, RmsNormPerRowAndPerChunk) {
  const MatrixF x = Random(5, 12, 1);
  const VectorF w = Random(4, 1, 2).col(0);
  const MatrixF y = RmsNorm(x, w, 1e-5f);  // three chunks of width 4 per row (Qwen3 q/k norm)
  for (int r = 0; r < 5; ++r) {
    for (int c0 = 0; c0 < 12; c0 += 4) {
      double ss = 0;
      for (int i = 0; i < 4; ++i) ss += double(x(r, c0 + i)) * x(r, c0 + i);
      const double inv = 1.0 / std::sqrt(ss / 4 + 1e-5);
      for (int i = 0; i < 4; ++i) EXPECT_NEAR(y(r, c0 + i), w(i) * x(r, c0 + i) * inv, 1e-5);
    }
  }
}

TEST(Ops, LinearWithBias) {
  const MatrixF x = Random(7, 9, 3), w = Random(4, 9, 4);
  const VectorF b = Random(4, 1, 5).col(0);
  const MatrixF y = Linear(x, w, &b);
  for (int t = 0; t < 7; ++t) {
    for (int o = 0; o < 4; ++o) {
      double acc = b(o);
      for (int i = 0; i < 9; ++i) acc += double(x(t, i)) * w(o, i);
      EXPECT_NEAR(y(t, o), acc, 1e-5);
    }
  }
}

TEST(Ops, SiluMul) {
  MatrixF g = Random(3, 8, 6);
  const MatrixF g0 = g, u = Random(3, 8, 7);
  SiluMulInPlace(g, u);
  for (Eigen::Index i = 0; i < g.size(); ++i) {
    const double x = g0.data()[i];
    EXPECT_NEAR(g.data()[i], x / (1 + std::exp(-x)) * u.data()[i], 1e-6);
  }
}

void CheckAttention(std::optional<int> window) {
  const AttentionShape s{2, 6, 4, 2, 3, window};
  const MatrixF q = Random(12, 12, 8), k = Random(12, 6, 9), v = Random(12, 6, 10);
  const MatrixF out = CausalAttention(q, k, v, s);
  for (int b = 0; b < 2; ++b) {
    for (int h = 0; h < 4; ++h) {
      const int kvh = h / 2;
      for (int i = 0; i < 6; ++i) {
        const int lo = window ? std::max(0, i - *window + 1) : 0;
        std::vector<double> p;
        double z = 0;
        for (int j = lo; j <= i; ++j) {
          double d = 0;
          for (int e = 0; e < 3; ++e) d += double(q(b * 6 + i, h * 3 + e)) * k(b * 6 + j, kvh * 3 + e);
          p.push_back(std::exp(d / std::sqrt(3.0)));
          z += p.back();
        }
        for (int e = 0; e < 3; ++e) {
          double acc = 0;
          for (int j = lo; j <= i; ++j) acc += p[j - lo] / z * v(b * 6 + j, kvh * 3 + e);
          EXPECT_NEAR(out(b * 6 + i, h * 3 + e), acc, 1e-5) << "b" << b << " h" << h << " i" << i;
        }
      }
    }
  }
}

TEST(Ops, CausalGroupedQueryAttention) { CheckAttention(std::nullopt); }
TEST(Ops, SlidingWindowAttention) { CheckAttention(3); }

TEST(Ops, RopeRotatesHalvesPerPosition) {
  ModelConfig c;
  c.head_dim = 8;
  c.rope_theta = 10000.0;
  const RopeTable rope(c, 16);
  MatrixF x = Random(2 * 5, 2 * 8, 11);  // 2 sequences of 5 tokens, 2 heads
  const MatrixF x0 = x;
  rope.Apply(x, 2, 5, 2, 8);
  for (int r = 0; r < 10; ++r) {
    const int pos = r % 5;
    for (int h = 0; h < 2; ++h) {
      for (int i = 0; i < 4; ++i) {
        const double a = pos * std::pow(10000.0, -2.0 * i / 8);
        const double x1 = x0(r, h * 8 + i), x2 = x0(r, h * 8 + 4 + i);
        EXPECT_NEAR(x(r, h * 8 + i), x1 * std::cos(a) - x2 * std::sin(a), 1e-5);
        EXPECT_NEAR(x(r, h * 8 + 4 + i), x2 * std::cos(a) + x1 * std::sin(a), 1e-5);
      }
    }
  }
}

TEST(Ops, Llama3RopeScalingBands) {
  ModelConfig c;
  c.head_dim = 128;
  c.rope_theta = 500000.0;
  c.rope_scaling = {RopeScaling::Type::kLlama3, 8.0, 1.0, 4.0, 8192};
  const std::vector<float> f = RopeInverseFrequencies(c);
  int kept = 0, scaled = 0, smoothed = 0;
  for (int i = 0; i < 64; ++i) {
    const double base = std::pow(500000.0, -2.0 * i / 128);
    const double wavelen = 2 * std::numbers::pi / base;
    double expected;
    if (wavelen < 8192.0 / 4) {
      expected = base, ++kept;
    } else if (wavelen > 8192.0) {
      expected = base / 8, ++scaled;
    } else {
      const double smooth = (8192.0 / wavelen - 1) / 3;
      expected = (1 - smooth) * base / 8 + smooth * base, ++smoothed;
    }
    EXPECT_NEAR(f[i], expected, 1e-6 * expected) << i;
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(scaled, 0);
  EXPECT_GT(smoothed, 0);
}

}  // namespace
}  // namespace caliber
