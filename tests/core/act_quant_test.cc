// Per-token dynamic activation fake quantization (core/quant/act_quant.h) against an
// independent transcription of vLLM's dynamic_scaled_int8_quant reference (scale = absmax/127,
// x · (127/absmax) rounded half to even by hand — no nearbyint — and saturated;
// tests/core/act_quant_reference.h), bit for bit, on random rows (tiny, huge, one outlier),
// exact ties, all-zero rows and 4 bits; the taps adapter (the quantized input reaches the inner
// tap); act_bits validation; and Model::Forward at 8 bits against a forward whose every linear
// input is quantized by the independent transcription.
#include "core/quant/act_quant.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/act_quant_reference.h"
#include "core/eval/perplexity.h"
#include "core/model/model.h"
#include "core/text/token_source.h"

namespace caliber {
namespace {

using ::testing::HasSubstr;

bool BitIdentical(const MatrixF& a, const MatrixF& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.size())) == 0;
}

TEST(ActQuant, MatchesAnIndependentTranscriptionOfVllmOnRandomRows) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const int bits : {8, 4}) {
    MatrixF x(64, 300);
    for (Eigen::Index k = 0; k < x.size(); ++k) x.data()[k] = normal(rng) * (1.0f + static_cast<float>(k % 7));
    x.row(5) *= 1e-20f;  // tiny scales
    x.row(9) *= 1e20f;   // huge ones
    x(11, 3) = 500.0f;   // one outlier dominates its row
    MatrixF got = x;
    FakeQuantizePerToken(got, bits);
    const MatrixF want = ReferenceActQuantize(x, bits);
    EXPECT_TRUE(BitIdentical(got, want)) << bits << " bits: max |diff| "
                                         << (got - want).cwiseAbs().maxCoeff();
    // At most qmax + 1 distinct magnitudes per row and a round trip of half a step at most.
    const float qmax = static_cast<float>((1 << (bits - 1)) - 1);
    for (Eigen::Index t = 0; t < x.rows(); ++t) {
      const float step = x.row(t).cwiseAbs().maxCoeff() / qmax;
      EXPECT_LE((got.row(t) - x.row(t)).cwiseAbs().maxCoeff(), 0.5f * step * (1 + 1e-5f)) << t;
    }
    // Quantizing again changes nothing.
    MatrixF twice = got;
    FakeQuantizePerToken(twice, bits);
    EXPECT_TRUE(BitIdentical(twice, got)) << bits;
  }
}

TEST(ActQuant, TiesRoundHalfToEvenAndZeroRowsStayZero) {
  // absmax 127: scale 1 and x · (127/127) = x exactly, so x.5 values are exact ties.
  MatrixF x(4, 8);
  x.row(0) << 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, 127.0f;
  // absmax 254: scale 2, x · 0.5 exact; 1 -> 0.5 -> 0, 3 -> 1.5 -> 2, 5 -> 2.5 -> 2, -7 -> -4.
  x.row(1) << 1.0f, 3.0f, 5.0f, -7.0f, 254.0f, -254.0f, 0.0f, 9.0f;
  x.row(2).setZero();
  x.row(3) << -0.0f, 0.0f, -0.0f, 0.0f, 0.0f, 0.0f, 0.0f, -0.0f;
  MatrixF got = x;
  FakeQuantizePerToken(got, 8);
  MatrixF want(4, 8);
  want.row(0) << 0.0f, 2.0f, 2.0f, -0.0f, -2.0f, -2.0f, 126.0f, 127.0f;
  want.row(1) << 0.0f, 4.0f, 4.0f, -8.0f, 254.0f, -254.0f, 0.0f, 8.0f;
  want.row(2).setZero();
  want.row(3) = x.row(3);
  EXPECT_EQ(got, want);
  EXPECT_TRUE(BitIdentical(got, ReferenceActQuantize(x, 8)));
  EXPECT_TRUE(std::signbit(got(3, 0))) << "an all-zero row is left exactly as it was";
}

TEST(ActQuant, FourBitGrid) {
  // 4 bits: qmax 7, scale absmax / 7 = 1; |x| <= absmax keeps every value within [-7, 7].
  MatrixF x(1, 5);
  x << -7.0f, 7.0f, -3.5f, 3.5f, 0.49f;
  MatrixF got = x;
  FakeQuantizePerToken(got, 4);
  MatrixF want(1, 5);
  want << -7.0f, 7.0f, -4.0f, 4.0f, 0.0f;
  EXPECT_EQ(got, want);
}

class RecordingTaps : public LayerTaps {
 public:
  void OnLinearInput(LinearGroup group, MatrixF& x) override {
    groups.push_back(group);
    seen.push_back(x);
    x(0, 0) = 42.0f;  // an inner tap may rewrite the input too
  }
  std::vector<LinearGroup> groups;
  std::vector<MatrixF> seen;
};

TEST(ActQuantTaps, QuantizesTheInputBeforeTheInnerTapSeesIt) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  MatrixF x(6, 40);
  for (Eigen::Index k = 0; k < x.size(); ++k) x.data()[k] = u(rng);
  const MatrixF want = ReferenceActQuantize(x, 8);

  RecordingTaps inner;
  ActQuantTaps taps(8, &inner);
  MatrixF in = x;
  taps.OnLinearInput(LinearGroup::kDown, in);
  ASSERT_EQ(inner.seen.size(), 1u);
  EXPECT_EQ(inner.groups[0], LinearGroup::kDown);
  EXPECT_TRUE(BitIdentical(inner.seen[0], want));
  EXPECT_EQ(in(0, 0), 42.0f);
  EXPECT_EQ(in.bottomRows(5), want.bottomRows(5));

  ActQuantTaps alone(8, nullptr);
  MatrixF in2 = x;
  alone.OnLinearInput(LinearGroup::kQkv, in2);
  EXPECT_TRUE(BitIdentical(in2, want));

  std::optional<ActQuantTaps> storage;
  EXPECT_EQ(WithActivationQuantization(16, &inner, storage), &inner);
  EXPECT_FALSE(storage.has_value());
  EXPECT_EQ(WithActivationQuantization(16, nullptr, storage), nullptr);
  LayerTaps* t = WithActivationQuantization(8, &inner, storage);
  ASSERT_TRUE(storage.has_value());
  EXPECT_EQ(t, &*storage);
}

TEST(ActQuant, ValidateActBits) {
  EXPECT_TRUE(ValidateActBits(16).ok());
  EXPECT_TRUE(ValidateActBits(8).ok());
  for (const int bad : {0, 4, 7, 32, -8}) {
    const absl::Status s = ValidateActBits(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("act_bits must be 16 (float activations) or 8 "
                                       "(per-token dynamic INT8), got " + std::to_string(bad)));
  }
}

// Runs every linear input through ReferenceQuantize (the independent transcription).
class ReferenceActTaps : public LayerTaps {
 public:
  void OnLinearInput(LinearGroup, MatrixF& x) override {
    x = ReferenceActQuantize(x, 8);
    ++calls;
  }
  int calls = 0;
};

TEST(ActQuantModel, ForwardAtEightBitsQuantizesEveryDecoderLinearInput) {
  const std::string dir = std::string(CALIBER_TESTDATA_DIR) + "/tinyllama-en";
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  const Model& m = **model;
  absl::StatusOr<std::vector<int32_t>> stream = LoadTokenStream(
      dir + "/heldout/heldout_tokens.i32", TokenFormat::kI32, nullptr, m.config().vocab_size);
  ASSERT_TRUE(stream.ok()) << stream.status();
  const absl::Span<const int32_t> ids(stream->data(), 2 * 48);

  absl::StatusOr<MatrixF> got = m.Forward(ids, 2, 8);
  ASSERT_TRUE(got.ok()) << got.status();
  // By hand: embed, each layer with the reference taps, final norm + lm_head (in float).
  absl::StatusOr<MatrixF> hidden = m.Embed(ids);
  ASSERT_TRUE(hidden.ok());
  ReferenceActTaps taps;
  for (int l = 0; l < m.config().num_hidden_layers; ++l) m.RunLayer(l, {2, 48}, *hidden, &taps);
  EXPECT_EQ(taps.calls, 4 * m.config().num_hidden_layers);
  EXPECT_TRUE(BitIdentical(*got, m.Logits(*hidden)));

  absl::StatusOr<MatrixF> plain = m.Forward(ids, 2);
  absl::StatusOr<MatrixF> sixteen = m.Forward(ids, 2, 16);
  ASSERT_TRUE(plain.ok() && sixteen.ok());
  EXPECT_TRUE(BitIdentical(*plain, *sixteen));
  const float diff = (*plain - *got).cwiseAbs().maxCoeff();
  std::printf("max |logit(A8) - logit(A16)| = %g\n", diff);
  EXPECT_GT(diff, 0.0f);
  EXPECT_LT(diff, 1.0f);

  const absl::StatusOr<MatrixF> bad = m.Forward(ids, 2, 4);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);

  // Perplexity passes act_bits through and records it.
  PerplexityOptions po;
  po.seq_len = 48;
  po.max_windows = 4;
  po.act_bits = 8;
  absl::StatusOr<PerplexityResult> a8 = EvaluatePerplexity(m, *stream, po);
  po.act_bits = 16;
  absl::StatusOr<PerplexityResult> a16 = EvaluatePerplexity(m, *stream, po);
  ASSERT_TRUE(a8.ok() && a16.ok());
  EXPECT_EQ(a8->act_bits, 8);
  EXPECT_EQ(a16->act_bits, 16);
  EXPECT_NE(a8->ppl, a16->ppl);
  EXPECT_NEAR(a8->ppl, a16->ppl, 0.05 * a16->ppl);
}

}  // namespace
}  // namespace caliber
