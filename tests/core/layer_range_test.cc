// Stage execution (what a worker runs): QuantizeLayerRange over part of the model, resuming
// with some layers already done, must give bit-identical results to one uninterrupted
// QuantizeModel, with float activations and with W·A8's INT8 ones — the property that makes worker failover produce the same checkpoint. Also
// round-trips layer results and activations through their byte encodings.
#include <map>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/calib/model_quantizer.h"
#include "core/formats/layer_result_codec.h"
#include "core/model/weights.h"
#include "core/text/token_source.h"

namespace caliber {
namespace {

const std::string kModelDir = std::string(CALIBER_TESTDATA_DIR) + "/tinyllama-en";

struct Fixture {
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
  CalibrationSet calib;
};

const Fixture& Fix() {
  static const Fixture* fixture = [] {
    auto* f = new Fixture;
    f->config = *ModelConfig::FromFile(kModelDir + "/config.json");
    f->checkpoint = *Checkpoint::Open(kModelDir);
    auto stream = LoadTokenStream(kModelDir + "/calib/calib_tokens.i32", TokenFormat::kI32,
                                  nullptr, f->config.vocab_size);
    f->calib = *SelectCalibrationSegments(*stream, 8, 64, /*seed=*/3, CalibSampling::kRandom);
    return f;
  }();
  return *fixture;
}

void ExpectSameLayer(const LayerQuantResult& a, const LayerQuantResult& b) {
  ASSERT_EQ(a.layer, b.layer);
  ASSERT_EQ(a.modules.size(), b.modules.size());
  for (size_t i = 0; i < a.modules.size(); ++i) {
    const QuantizedLinear& x = a.modules[i].quantized;
    const QuantizedLinear& y = b.modules[i].quantized;
    EXPECT_EQ(a.modules[i].module, b.modules[i].module);
    EXPECT_TRUE(x.codes == y.codes) << "layer " << a.layer << " module " << i;
    EXPECT_TRUE(x.scales == y.scales);
    EXPECT_TRUE(x.zeros == y.zeros);
    EXPECT_EQ(x.g_idx, y.g_idx);
    EXPECT_TRUE(x.lora_a == y.lora_a);
    EXPECT_TRUE(x.lora_b == y.lora_b);
    EXPECT_EQ(x.report.relative_error, y.report.relative_error);
    EXPECT_EQ(a.modules[i].hessian_trace, b.modules[i].hessian_trace);
  }
}

class LayerRangeTest : public ::testing::TestWithParam<std::tuple<std::string, Propagation, int>> {};

TEST_P(LayerRangeTest, ResumedStagesMatchOneRun) {
  const Fixture& f = Fix();
  CalibrationOptions options;
  options.method = std::get<0>(GetParam());
  options.propagation = std::get<1>(GetParam());
  options.spec.bits = 3;
  options.spec.group_size = 64;
  options.spec.lora_rank = options.method == "gptq_lora" ? 8 : 0;
  options.batch_seqs = 3;  // batches that do not divide the sample count
  options.act_bits = std::get<2>(GetParam());  // 8: W·A8, replay fake-quantizes activations too
  auto whole = QuantizeModel(f.config, *f.checkpoint, f.calib, options);
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_EQ(whole->layers.size(), 4u);

  // Two stages [0,2) and [2,4); the second is "killed" after layer 2 and resumed from the
  // stage input with layer 2 read back from its encoded bytes.
  const SequenceBatch samples{f.calib.nsamples, f.calib.seq_len};
  auto hidden = EmbedCalibrationTokens(f.config, *f.checkpoint, f.calib);
  ASSERT_TRUE(hidden.ok());
  std::map<int, LayerQuantResult> got;
  auto keep = [&](const LayerQuantResult& l) {
    got[l.layer] = l;
    return absl::OkStatus();
  };
  ASSERT_TRUE(QuantizeLayerRange(f.config, *f.checkpoint, options, samples, 0, 2, {}, *hidden, keep).ok());
  const std::string boundary = EncodeActivations(1, *hidden);
  auto stage_input = DecodeActivations(boundary, 1, hidden->rows(), hidden->cols());
  ASSERT_TRUE(stage_input.ok()) << stage_input.status();
  EXPECT_TRUE(*stage_input == *hidden);

  MatrixF first_try = *stage_input;
  ASSERT_TRUE(QuantizeLayerRange(f.config, *f.checkpoint, options, samples, 2, 3, {}, first_try, keep).ok());
  auto decoded = DecodeLayerResult(EncodeLayerResult(got.at(2)));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectSameLayer(*decoded, got.at(2));
  std::map<int, LayerQuantResult> done = {{2, *decoded}};
  got.erase(2);
  MatrixF resumed = *stage_input;
  ASSERT_TRUE(QuantizeLayerRange(f.config, *f.checkpoint, options, samples, 2, 4, done, resumed, keep).ok());
  EXPECT_FALSE(got.count(2)) << "a done layer was quantized again";
  got[2] = *decoded;
  for (int l = 0; l < 4; ++l) ExpectSameLayer(got.at(l), whole->layers[l]);
}

INSTANTIATE_TEST_SUITE_P(Methods, LayerRangeTest,
                         ::testing::Combine(::testing::Values("gptq", "gptq_lora"),
                                            ::testing::Values(Propagation::kQuantized, Propagation::kFp),
                                            ::testing::Values(16, 8)));

TEST(LayerResultCodec, RejectsDamagedBytes) {
  const Fixture& f = Fix();
  CalibrationOptions options;
  options.method = "rtn";
  auto hidden = EmbedCalibrationTokens(f.config, *f.checkpoint, f.calib);
  ASSERT_TRUE(hidden.ok());
  LayerQuantResult layer;
  ASSERT_TRUE(QuantizeLayerRange(f.config, *f.checkpoint, options, {f.calib.nsamples, f.calib.seq_len},
                                 0, 1, {}, *hidden, [&](const LayerQuantResult& l) {
                                   layer = l;
                                   return absl::OkStatus();
                                 }).ok());
  const std::string bytes = EncodeLayerResult(layer);
  for (const size_t cut : {size_t{0}, size_t{7}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_FALSE(DecodeLayerResult(bytes.substr(0, cut)).ok()) << cut;
  }
  EXPECT_FALSE(DecodeActivations(bytes, 0, 1, 1).ok());
  const std::string acts = EncodeActivations(4, *hidden);
  EXPECT_FALSE(DecodeActivations(acts, 3, hidden->rows(), hidden->cols()).ok());
  EXPECT_FALSE(DecodeActivations(acts, 4, hidden->rows() + 1, hidden->cols()).ok());
  EXPECT_FALSE(DecodeLayerResult(acts).ok());
}

TEST(LayerRange, RejectsBadRanges) {
  const Fixture& f = Fix();
  MatrixF hidden(1, 1);
  CalibrationOptions options;
  EXPECT_FALSE(QuantizeLayerRange(f.config, *f.checkpoint, options, {1, 1}, 3, 5, {}, hidden, nullptr).ok());
  EXPECT_FALSE(QuantizeLayerRange(f.config, *f.checkpoint, options, {1, 1}, 2, 1, {}, hidden, nullptr).ok());
}

}  // namespace
}  // namespace caliber
