// W·A8 calibration (CalibrationOptions::act_bits = 8) against an independent recomputation:
// QuantizeLayer on tinyllama-en layer 1 with GPTQ, quantized propagation and float64 Hessians.
// For each module group in true-sequential order, the layer is rerun by hand with the groups
// before it replaced by their quantized result and every linear input quantized by the
// independent transcription of vLLM's per-token INT8 (tests/core/act_quant_reference.h); the
// reported Hessian trace must be 2/n·Σ‖x‖² of exactly those quantized inputs (and not of the
// float ones), and the propagated outputs must be the hand-run quantized layer's, bit for bit.
// PropagateLayer at 8 bits replays the same outputs; other act_bits are refused.
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/act_quant_reference.h"
#include "core/calib/model_quantizer.h"
#include "core/model/weights.h"
#include "core/text/token_source.h"

namespace caliber {
namespace {

using ::testing::HasSubstr;

const std::string kModelDir = std::string(CALIBER_TESTDATA_DIR) + "/tinyllama-en";
constexpr int kLayer = 1;
constexpr int kBatchSeqs = 3;  // does not divide the 5 samples

// Quantizes every linear input with the reference and records the (quantized and float)
// inputs of one group.
class CaptureTaps : public LayerTaps {
 public:
  explicit CaptureTaps(LinearGroup want) : want_(want) {}
  void OnLinearInput(LinearGroup g, MatrixF& x) override {
    if (g == want_) float_sq_ += x.cast<double>().squaredNorm();
    x = ReferenceActQuantize(x, 8);
    if (g == want_) quant_sq_ += x.cast<double>().squaredNorm();
  }
  double quant_sq_ = 0, float_sq_ = 0;

 private:
  LinearGroup want_;
};

struct Fixture {
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
  CalibrationSet calib;
  MatrixF layer_input;  // inputs of kLayer (through layer 0 at 8 bits, unquantized weights)
};

const Fixture& Fix() {
  static const Fixture* setup = [] {
    auto* s = new Fixture;
    s->config = *ModelConfig::FromFile(kModelDir + "/config.json");
    s->checkpoint = *Checkpoint::Open(kModelDir);
    auto stream = LoadTokenStream(kModelDir + "/calib/calib_tokens.i32", TokenFormat::kI32,
                                  nullptr, s->config.vocab_size);
    s->calib = *SelectCalibrationSegments(*stream, 5, 48, /*seed=*/1, CalibSampling::kRandom);
    s->layer_input = *EmbedCalibrationTokens(s->config, *s->checkpoint, s->calib);
    const RopeTable rope(s->config, s->calib.seq_len);
    const LayerWeights w0 = *LoadLayerWeights(s->config, *s->checkpoint, 0);
    EXPECT_TRUE(PropagateLayer(s->config, rope, 0, w0, {s->calib.nsamples, s->calib.seq_len},
                               kBatchSeqs, 8, s->layer_input)
                    .ok());
    return s;
  }();
  return *setup;
}

// Runs the layer over all samples in batches of kBatchSeqs (the shapes QuantizeLayer uses).
MatrixF RunByHand(const LayerWeights& w, LayerTaps& taps) {
  const Fixture& f = Fix();
  const RopeTable rope(f.config, f.calib.seq_len);
  MatrixF out = f.layer_input;
  for (int s0 = 0; s0 < f.calib.nsamples; s0 += kBatchSeqs) {
    const int n = std::min(kBatchSeqs, f.calib.nsamples - s0);
    MatrixF h = f.layer_input.middleRows(s0 * f.calib.seq_len, n * f.calib.seq_len);
    DecoderLayerForward(f.config, kLayer, w, rope, {n, f.calib.seq_len}, h, &taps);
    out.middleRows(s0 * f.calib.seq_len, n * f.calib.seq_len) = h;
  }
  return out;
}

std::vector<LinearModule> ModulesOf(LinearGroup g) {
  switch (g) {
    case LinearGroup::kQkv: return {LinearModule::kQ, LinearModule::kK, LinearModule::kV};
    case LinearGroup::kO: return {LinearModule::kO};
    case LinearGroup::kGateUp: return {LinearModule::kGate, LinearModule::kUp};
    case LinearGroup::kDown: return {LinearModule::kDown};
  }
  return {};
}

TEST(ActQuantCalibration, HessiansAndPropagationSeeTheQuantizedInputs) {
  const Fixture& f = Fix();
  const RopeTable rope(f.config, f.calib.seq_len);
  const SequenceBatch samples{f.calib.nsamples, f.calib.seq_len};
  const LayerWeights original = *LoadLayerWeights(f.config, *f.checkpoint, kLayer);
  CalibrationOptions options;
  options.method = "gptq";
  options.spec.bits = 4;
  options.spec.group_size = 64;
  options.batch_seqs = kBatchSeqs;
  options.hessian_precision = HessianAccumulator::Precision::kFloat64;
  options.act_bits = 8;
  LayerWeights weights = original;
  MatrixF hidden = f.layer_input;
  absl::StatusOr<LayerQuantResult> result =
      QuantizeLayer(f.config, rope, kLayer, weights, options, samples, hidden);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->modules.size(), 7u);
  auto find = [&](LinearModule m) -> const ModuleQuantResult& {
    for (const ModuleQuantResult& r : result->modules) {
      if (r.module == m) return r;
    }
    ADD_FAILURE() << "module missing";
    return result->modules[0];
  };

  // Group by group: earlier groups quantized, inputs quantized by the reference.
  LayerWeights by_hand = original;
  for (const LinearGroup g : kAllLinearGroups) {
    CaptureTaps taps(g);
    RunByHand(by_hand, taps);
    const double n = f.calib.nsamples;
    const double want = 2.0 / n * taps.quant_sq_;
    const double unquantized = 2.0 / n * taps.float_sq_;
    std::printf("group %-8s trace(H) %.10g: quantized inputs %.10g, float inputs %.10g\n",
                std::string(LinearGroupName(g)).c_str(), find(ModulesOf(g)[0]).hessian_trace, want,
                unquantized);
    for (const LinearModule m : ModulesOf(g)) {
      const double got = find(m).hessian_trace;
      // H is finalized in float32: its trace carries float rounding (~1e-7 relative).
      EXPECT_NEAR(got / want, 1.0, 5e-7) << LinearGroupName(g);
      EXPECT_GT(std::abs(got / unquantized - 1.0), 5e-6) << "float inputs give the same trace?";
      EXPECT_EQ(find(m).hessian_tokens, f.calib.nsamples * f.calib.seq_len);
    }
    for (const LinearModule m : ModulesOf(g)) by_hand.linear(m).weight = find(m).quantized.Reconstruct();
  }

  // The propagated outputs: the quantized layer, inputs quantized, bit for bit.
  CaptureTaps all(LinearGroup::kQkv);
  const MatrixF want_out = RunByHand(by_hand, all);
  EXPECT_TRUE(hidden == want_out) << "max |diff| " << (hidden - want_out).cwiseAbs().maxCoeff();
  for (const LinearModule m : kAllLinearModules) EXPECT_TRUE(weights.linear(m).weight == by_hand.linear(m).weight);

  // PropagateLayer replays it (what a resumed stage does with a done layer).
  MatrixF replay = f.layer_input;
  ASSERT_TRUE(PropagateLayer(f.config, rope, kLayer, by_hand, samples, kBatchSeqs, 8, replay).ok());
  EXPECT_TRUE(replay == want_out);
  // ... and at 16 bits it is a different computation.
  MatrixF float_replay = f.layer_input;
  ASSERT_TRUE(PropagateLayer(f.config, rope, kLayer, by_hand, samples, kBatchSeqs, 16, float_replay).ok());
  EXPECT_FALSE(float_replay == want_out);
}

TEST(ActQuantCalibration, OtherActBitsAreRefused) {
  const Fixture& f = Fix();
  const RopeTable rope(f.config, f.calib.seq_len);
  const SequenceBatch samples{f.calib.nsamples, f.calib.seq_len};
  LayerWeights weights = *LoadLayerWeights(f.config, *f.checkpoint, kLayer);
  CalibrationOptions options;
  options.method = "rtn";
  for (const int bad : {0, 4, 32}) {
    options.act_bits = bad;
    MatrixF hidden = f.layer_input;
    absl::StatusOr<LayerQuantResult> r = QuantizeLayer(f.config, rope, kLayer, weights, options, samples, hidden);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(r.status().message(), HasSubstr("act_bits must be 16"));
    EXPECT_TRUE(hidden == f.layer_input);
    const absl::Status p = PropagateLayer(f.config, rope, kLayer, weights, samples, 8, bad, hidden);
    EXPECT_EQ(p.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace caliber
