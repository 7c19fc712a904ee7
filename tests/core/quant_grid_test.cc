// FindParams / QuantCode / Dequant against a naive per-element transcription of IST-DASLab
// quant.py (Quantizer.find_params with perchannel=True, weight=True, and quantize()).
#include "core/quant/quant_grid.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

#include "core/tensor/matrix.h"

namespace caliber {
namespace {

// Every torch op rounds to float32; `volatile` stops the compiler from fusing a multiply and an
// add into one FMA.
float RefQuantize(float x, float scale, float zero, float maxq) {
  volatile float ratio = x / scale;
  float q = std::nearbyint(static_cast<float>(ratio)) + zero;  // torch.round: half to even
  q = std::min(std::max(q, 0.0f), maxq);                      // torch.clamp(q, 0, maxq)
  volatile float out = scale * (q - zero);
  return out;
}

struct RefParams {
  std::vector<float> scale, zero;
};

RefParams RefFindParams(const MatrixF& x, int bits, bool sym, bool mse) {
  const float maxq = static_cast<float>((1 << bits) - 1);
  RefParams p;
  std::vector<float> xmin_v, xmax_v;
  for (int r = 0; r < x.rows(); ++r) {
    float xmin = 0, xmax = 0;  // torch.minimum(x.min(1), 0), torch.maximum(x.max(1), 0)
    for (int c = 0; c < x.cols(); ++c) {
      xmin = std::min(xmin, x(r, c));
      xmax = std::max(xmax, x(r, c));
    }
    if (sym) {
      xmax = std::max(std::fabs(xmin), xmax);
      if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) {
      xmin = -1;
      xmax = +1;
    }
    volatile float scale = (xmax - xmin) / maxq;
    p.scale.push_back(static_cast<float>(scale));
    if (sym) {
      p.zero.push_back((maxq + 1) / 2);
    } else {
      volatile float ratio = -xmin / scale;
      p.zero.push_back(std::nearbyint(static_cast<float>(ratio)));
    }
    xmin_v.push_back(xmin);
    xmax_v.push_back(xmax);
  }
  if (!mse) return p;
  const int grid = 100;
  const double maxshrink = 0.8, norm = 2.4;
  for (int r = 0; r < x.rows(); ++r) {
    double best = std::numeric_limits<double>::infinity();
    for (int i = 0; i < static_cast<int>(maxshrink * grid); ++i) {
      const float pf = static_cast<float>(1 - static_cast<double>(i) / grid);
      volatile float xmin1 = pf * xmin_v[static_cast<size_t>(r)];
      volatile float xmax1 = pf * xmax_v[static_cast<size_t>(r)];
      volatile float scale1 = (xmax1 - xmin1) / maxq;
      volatile float ratio = -xmin1 / scale1;
      const float zero1 =
          sym ? p.zero[static_cast<size_t>(r)] : std::nearbyint(static_cast<float>(ratio));
      double err = 0;
      for (int c = 0; c < x.cols(); ++c) {
        volatile float d = RefQuantize(x(r, c), scale1, zero1, maxq) - x(r, c);
        err += std::pow(std::fabs(static_cast<float>(d)), static_cast<float>(norm));
      }
      if (err < best) {
        best = err;
        p.scale[static_cast<size_t>(r)] = static_cast<float>(scale1);
        p.zero[static_cast<size_t>(r)] = zero1;
      }
    }
  }
  return p;
}

MatrixF RandomRows(int rows, int cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  MatrixF x(rows, cols);
  for (int r = 0; r < rows; ++r) {
    const float row_scale = std::exp(normal(rng));  // rows of very different ranges
    for (int c = 0; c < cols; ++c) x(r, c) = normal(rng) * row_scale;
  }
  return x;
}

struct GridCase {
  int bits;
  bool sym;
  bool mse;
};

class QuantGridTest : public ::testing::TestWithParam<GridCase> {};

TEST_P(QuantGridTest, MatchesQuantPyBitExactly) {
  const GridCase c = GetParam();
  MatrixF x = RandomRows(24, 64, 42 + static_cast<uint32_t>(c.bits));
  x.row(3).setZero();                                // both-zero row -> [-1, 1]
  x.row(5) = x.row(5).cwiseAbs();                    // nonnegative row
  x.row(7) = -x.row(7).cwiseAbs();                   // nonpositive row
  x.row(9).setConstant(0.25f);                       // constant row
  const GridParams got = FindParams(x, c.bits, c.sym, c.mse);
  const RefParams want = RefFindParams(x, c.bits, c.sym, c.mse);
  const float maxq = static_cast<float>(MaxQ(c.bits));
  for (int r = 0; r < x.rows(); ++r) {
    ASSERT_EQ(got.scale[r], want.scale[static_cast<size_t>(r)]) << "row " << r;
    ASSERT_EQ(got.zero[r], want.zero[static_cast<size_t>(r)]) << "row " << r;
    for (int col = 0; col < x.cols(); ++col) {
      const float code = QuantCode(x(r, col), got.scale[r], got.zero[r], maxq);
      ASSERT_GE(code, 0.0f);
      ASSERT_LE(code, maxq);
      ASSERT_EQ(code, std::nearbyint(code));
      ASSERT_EQ(Dequant(code, got.scale[r], got.zero[r]),
                RefQuantize(x(r, col), want.scale[static_cast<size_t>(r)],
                            want.zero[static_cast<size_t>(r)], maxq))
          << "row " << r << " col " << col;
    }
  }
}

TEST(QuantGridErrorTest, WithinHalfStepForMixedSignRows) {
  const MatrixF x = RandomRows(16, 128, 7);
  for (int bits : {2, 3, 4, 8}) {
    for (bool sym : {true, false}) {
      const GridParams p = FindParams(x, bits, sym, /*mse=*/false);
      const float maxq = static_cast<float>(MaxQ(bits));
      for (int r = 0; r < x.rows(); ++r) {
        ASSERT_LT(x.row(r).minCoeff(), 0.0f);
        ASSERT_GT(x.row(r).maxCoeff(), 0.0f);
        for (int col = 0; col < x.cols(); ++col) {
          const float q = Dequant(QuantCode(x(r, col), p.scale[r], p.zero[r], maxq), p.scale[r],
                                  p.zero[r]);
          EXPECT_LE(std::fabs(q - x(r, col)), p.scale[r] * (0.5f + 1e-5f))
              << bits << " bits, sym " << sym << ", row " << r << ", col " << col;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Grids, QuantGridTest,
    ::testing::Values(GridCase{2, true, false}, GridCase{3, true, false},
                      GridCase{4, true, false}, GridCase{8, true, false},
                      GridCase{2, false, false}, GridCase{3, false, false},
                      GridCase{4, false, false}, GridCase{8, false, false},
                      GridCase{3, true, true}, GridCase{4, false, true}, GridCase{2, false, true}),
    [](const ::testing::TestParamInfo<GridCase>& param_info) {
      const GridCase& g = param_info.param;
      return absl::StrCat("w", g.bits, g.sym ? "_sym" : "_asym", g.mse ? "_mse" : "");
    });

TEST(QuantGridTest, RoundsHalfToEvenLikeTorch) {
  // scale 1, zero 8 (4-bit symmetric): x = 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0.
  EXPECT_EQ(QuantCode(0.5f, 1.0f, 8.0f, 15.0f), 8.0f);
  EXPECT_EQ(QuantCode(1.5f, 1.0f, 8.0f, 15.0f), 10.0f);
  EXPECT_EQ(QuantCode(2.5f, 1.0f, 8.0f, 15.0f), 10.0f);
  EXPECT_EQ(QuantCode(-0.5f, 1.0f, 8.0f, 15.0f), 8.0f);
  EXPECT_EQ(QuantCode(-100.0f, 1.0f, 8.0f, 15.0f), 0.0f);
  EXPECT_EQ(QuantCode(100.0f, 1.0f, 8.0f, 15.0f), 15.0f);
}

TEST(QuantGridTest, SymmetricQuirksOfQuantPy) {
  MatrixF x(2, 3);
  x << 0.0f, 1.0f, 3.0f,   // nonnegative: xmin stays 0 even with sym
      0.0f, 0.0f, 0.0f;    // all zero: range [-1, 1]
  const GridParams p = FindParams(x, 4, /*sym=*/true, /*mse=*/false);
  EXPECT_EQ(p.scale[0], 3.0f / 15.0f);
  EXPECT_EQ(p.zero[0], 8.0f);
  EXPECT_EQ(p.scale[1], 2.0f / 15.0f);
  EXPECT_EQ(p.zero[1], 8.0f);
  const GridParams a = FindParams(x, 4, /*sym=*/false, /*mse=*/false);
  EXPECT_EQ(a.zero[0], 0.0f);
  EXPECT_EQ(a.zero[1], std::nearbyint(1.0f / (2.0f / 15.0f)));
}

}  // namespace
}  // namespace caliber
