// RTN against a naive per-element transcription of quant.py applied group by group, plus the
// QuantSpec validation and the quantizer registry.
#include "core/quant/rtn.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "core/quant/quant_grid.h"
#include "core/quant/quantizer.h"

namespace caliber {
namespace {

using ::testing::HasSubstr;

float RefQuantize(float x, float scale, float zero, float maxq) {
  volatile float ratio = x / scale;
  float q = std::nearbyint(static_cast<float>(ratio)) + zero;
  q = std::min(std::max(q, 0.0f), maxq);
  volatile float out = scale * (q - zero);
  return out;
}

// quant.py find_params (no MSE) for one row of a slice.
void RefRowParams(const float* x, int n, int bits, bool sym, float* scale, float* zero) {
  const float maxq = static_cast<float>((1 << bits) - 1);
  float xmin = 0, xmax = 0;
  for (int c = 0; c < n; ++c) {
    xmin = std::min(xmin, x[c]);
    xmax = std::max(xmax, x[c]);
  }
  if (sym) {
    xmax = std::max(std::fabs(xmin), xmax);
    if (xmin < 0) xmin = -xmax;
  }
  if (xmin == 0 && xmax == 0) {
    xmin = -1;
    xmax = 1;
  }
  volatile float s = (xmax - xmin) / maxq;
  *scale = s;
  volatile float ratio = -xmin / s;
  *zero = sym ? (maxq + 1) / 2 : std::nearbyint(static_cast<float>(ratio));
}

MatrixF RandomWeights(int rows, int cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  MatrixF w(rows, cols);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) w(r, c) = normal(rng);
  }
  w(1, 5) = 0.5f;  // an outlier
  return w;
}

struct RtnCase {
  int bits;
  int group;
  bool sym;
};

class RtnTest : public ::testing::TestWithParam<RtnCase> {};

TEST_P(RtnTest, MatchesQuantPyPerGroup) {
  const RtnCase c = GetParam();
  const int out = 12, in = 160;  // 160 = 128 + a short last group of 32 for group 128
  const MatrixF W = RandomWeights(out, in, 11 + static_cast<uint32_t>(c.bits));
  QuantSpec spec;
  spec.bits = c.bits;
  spec.group_size = c.group;
  spec.sym = c.sym;
  absl::StatusOr<QuantizedLinear> q = RtnQuantize(W, spec);
  ASSERT_TRUE(q.ok()) << q.status();

  const int group = c.group == -1 ? in : c.group;
  const int groups = (in + group - 1) / group;
  ASSERT_EQ(q->num_groups(), groups);
  ASSERT_EQ(q->codes.rows(), out);
  ASSERT_EQ(q->codes.cols(), in);
  const float maxq = static_cast<float>((1 << c.bits) - 1);
  const MatrixF deq = q->Dequantize();
  for (int i = 0; i < in; ++i) ASSERT_EQ(q->g_idx[static_cast<size_t>(i)], i / group);
  for (int r = 0; r < out; ++r) {
    for (int g = 0; g < groups; ++g) {
      const int begin = g * group, width = std::min(group, in - begin);
      float scale, zero;
      RefRowParams(W.row(r).data() + begin, width, c.bits, c.sym, &scale, &zero);
      ASSERT_EQ(q->scales(g, r), scale);
      ASSERT_EQ(static_cast<float>(q->zeros(g, r)), zero);
      for (int i = begin; i < begin + width; ++i) {
        ASSERT_LE(q->codes(r, i), maxq);
        ASSERT_EQ(deq(r, i), RefQuantize(W(r, i), scale, zero, maxq)) << r << "," << i;
      }
    }
  }
}

TEST_P(RtnTest, MseGridComesFromFindParamsOnEachGroup) {
  const RtnCase c = GetParam();
  const MatrixF W = RandomWeights(6, 128, 3);
  QuantSpec spec;
  spec.bits = c.bits;
  spec.group_size = c.group;
  spec.sym = c.sym;
  spec.mse = true;
  absl::StatusOr<QuantizedLinear> q = RtnQuantize(W, spec);
  ASSERT_TRUE(q.ok()) << q.status();
  const int group = c.group == -1 ? 128 : c.group;
  for (int g = 0; g < q->num_groups(); ++g) {
    const GridParams p = FindParams(W.middleCols(g * group, group), c.bits, c.sym, true);
    for (int r = 0; r < W.rows(); ++r) {
      EXPECT_EQ(q->scales(g, r), p.scale[r]);
      EXPECT_EQ(q->zeros(g, r), static_cast<int>(p.zero[r]));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Configs, RtnTest,
    ::testing::Values(RtnCase{4, -1, true}, RtnCase{4, 128, true}, RtnCase{4, 64, false},
                      RtnCase{3, 32, true}, RtnCase{3, 128, false}, RtnCase{2, 64, true},
                      RtnCase{2, -1, false}, RtnCase{8, 128, true}, RtnCase{8, 32, false}),
    [](const ::testing::TestParamInfo<RtnCase>& param_info) {
      const RtnCase& c = param_info.param;
      return absl::StrCat("w", c.bits, "_g", c.group == -1 ? std::string("pc")
                                                             : std::to_string(c.group),
                          c.sym ? "_sym" : "_asym");
    });

TEST(QuantSpecTest, ValidateNamesTheField) {
  QuantSpec spec;
  EXPECT_TRUE(Validate(spec, 256).ok());
  spec.bits = 5;
  EXPECT_THAT(Validate(spec, 256).message(), HasSubstr("bits must be 2, 3, 4 or 8, got 5"));
  spec = QuantSpec();
  spec.group_size = 48;
  EXPECT_TRUE(Validate(spec, 96).ok());  // a divisor of in
  EXPECT_THAT(Validate(spec, 100).message(), HasSubstr("group_size"));
  spec.group_size = 128;
  EXPECT_TRUE(Validate(spec, 100).ok());  // standard sizes may leave a short last group
  spec.group_size = 0;
  EXPECT_EQ(Validate(spec, 128).code(), absl::StatusCode::kInvalidArgument);
  spec = QuantSpec();
  spec.damp = 0;
  EXPECT_THAT(Validate(spec, 128).message(), HasSubstr("damp must be positive"));
  spec = QuantSpec();
  spec.lora_rank = 128;
  EXPECT_THAT(Validate(spec, 128).message(),
              HasSubstr("lora_rank must be in [0, in_features=128)"));
  spec = QuantSpec();
  spec.lora_a_bits = 1;
  EXPECT_THAT(Validate(spec, 128).message(), HasSubstr("lora_a_bits"));
  spec = QuantSpec();
  spec.block_size = 0;
  EXPECT_THAT(Validate(spec, 128).message(), HasSubstr("block_size"));
}

TEST(QuantizerRegistryTest, FindsEveryMethodAndRejectsUnknown) {
  EXPECT_THAT(QuantizerNames(), ::testing::ElementsAre("rtn", "gptq", "gptq_lora"));
  for (const std::string& name : QuantizerNames()) {
    const LinearQuantizer* q = FindQuantizer(name);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->name(), name);
  }
  EXPECT_EQ(FindQuantizer("awq"), nullptr);
}

TEST(QuantizerRegistryTest, RtnReportAndInputChecks) {
  const MatrixF W = RandomWeights(8, 64, 5);
  const MatrixF X = RandomWeights(200, 64, 6) * 50;
  MatrixF H = (2.0f / 200) * X.transpose() * X;
  H = (0.5f * (H + H.transpose())).eval();  // a Hessian is exactly symmetric
  const LinearQuantizer* rtn = FindQuantizer("rtn");
  QuantSpec spec;
  spec.group_size = 32;
  absl::StatusOr<QuantizedLinear> q = rtn->Quantize(W, H, spec);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->report.method, "rtn");
  const MatrixD E = W.cast<double>() - q->Dequantize().cast<double>();
  const double want = (E * H.cast<double>() * E.transpose()).trace();
  EXPECT_NEAR(q->report.objective_after, want, 1e-9 * want);
  const MatrixD Wd = W.cast<double>();
  const double energy = (Wd * H.cast<double>() * Wd.transpose()).trace();
  // The report's energy tr(W H Wᵀ) = Σ_ij (WᵀW)_ij H_ij comes from a float32 Gram WᵀW (ssyrk over
  // the m = 8 rows; each entry within (m + 1)·u_f of Σ_k |w_ki w_kj|, whatever BLAS's order), so
  // relative_error is good to (m + 1)·u_f·c relative, c = Σ_ij (|W|ᵀ|W|)_ij |H_ij| / energy.
  const MatrixD absW = Wd.cwiseAbs();
  const double c = (absW.transpose() * absW).cwiseProduct(H.cast<double>().cwiseAbs()).sum() / energy;
  const double u_f = std::numeric_limits<float>::epsilon() / 2;
  EXPECT_NEAR(q->report.relative_error, want / energy, (W.rows() + 1) * u_f * c * (want / energy));
  EXPECT_GE(q->report.seconds, 0);

  EXPECT_THAT(rtn->Quantize(W, MatrixF::Zero(10, 10), spec).status().message(),
              HasSubstr("H must be 64x64"));
  MatrixF bad = W;
  bad(0, 0) = std::nanf("");
  EXPECT_THAT(rtn->Quantize(bad, H, spec).status().message(), HasSubstr("NaN"));
  spec.lora_rank = 4;
  EXPECT_THAT(rtn->Quantize(W, H, spec).status().message(), HasSubstr("gptq_lora only"));
}

}  // namespace
}  // namespace caliber
