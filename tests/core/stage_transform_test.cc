// HeRo-Q learned in stages, as a distributed job learns it: two layer ranges in two threads,
// each with only its own layers' problems, whose R1 gradient shares an in-process all-reduce
// sums, end with the same R1 and the same transforms as one process holding every layer (up
// to the summation order); the stage codec gives back exactly what it encoded and refuses
// damaged objects; ranges that do not tile the model are refused.
#include "core/transform/stage_transform.h"

#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "core/outliers_fixture.h"

#include "core/calib/model_quantizer.h"
#include "core/text/token_source.h"
#include "core/transform/heroq_objective.h"
#include "core/transform/model_transform.h"
#include "core/transform/transform_codec.h"

namespace caliber {
namespace {

using Fixture = testing_fixture::OutliersFixture;
const Fixture& Fix() { return testing_fixture::Outliers(); }

TransformOptions Heroq(int iterations) {
  TransformOptions o;
  o.kind = TransformKind::kHeroq;
  o.seed = 3;
  o.learn.iterations = iterations;
  o.learn.objective.bits = 3;
  o.learn.objective.group_size = 128;
  return o;
}

// The coordinator's reduction in miniature: each of `parties` threads posts its share of a
// round and waits until all have; everyone gets the sum in party order.
class BarrierReducer {
 public:
  explicit BarrierReducer(int parties) : parties_(parties) {}
  absl::StatusOr<ShareValue> Sum(int party, int round, const ShareValue& mine) {
    std::unique_lock<std::mutex> lock(mu_);
    Round& r = rounds_[round];
    r.shares[party] = mine;
    if (static_cast<int>(r.shares.size()) == parties_) {
      r.total.g_r1 = MatrixD::Zero(mine.g_r1.rows(), mine.g_r1.cols());
      for (const auto& [p, v] : r.shares) {
        r.total.loss += v.loss;
        r.total.g_r1 += v.g_r1;
      }
      r.done = true;
      cv_.notify_all();
    }
    cv_.wait(lock, [&] { return r.done; });
    return r.total;
  }

 private:
  struct Round {
    std::map<int, ShareValue> shares;
    ShareValue total;
    bool done = false;
  };
  const int parties_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, Round> rounds_;
};

class PartyReducer final : public ShareReducer {
 public:
  PartyReducer(BarrierReducer& barrier, int party) : barrier_(barrier), party_(party) {}
  absl::StatusOr<ShareValue> Sum(int round, const ShareValue& mine) override {
    return barrier_.Sum(party_, round, mine);
  }

 private:
  BarrierReducer& barrier_;
  int party_;
};

double MaxAbsDiff(const MatrixD& a, const MatrixD& b) { return (a - b).cwiseAbs().maxCoeff(); }

TEST(StageTransformTest, TwoStagesLearnWhatOneProcessLearns) {
  const Fixture& f = Fix();
  const TransformOptions o = Heroq(8);
  const TransformOutcome whole = *BuildModelTransform(f.config, *f.checkpoint, f.calib, o, 4);

  // Each stage builds its problems from its own inputs: stage 1 from stage 0's outputs.
  const int split = f.config.num_hidden_layers / 2;
  const SequenceBatch samples{f.calib.nsamples, f.calib.seq_len};
  MatrixF hidden = *EmbedCalibrationTokens(f.config, *f.checkpoint, f.calib);
  const std::vector<LayerProblem> p0 = *BuildLayerProblems(f.config, *f.checkpoint, 0, split, samples, 4, hidden);
  const std::vector<LayerProblem> p1 =
      *BuildLayerProblems(f.config, *f.checkpoint, split, f.config.num_hidden_layers, samples, 4, hidden);
  BarrierReducer barrier(2);
  PartyReducer r0(barrier, 0), r1(barrier, 1);
  absl::StatusOr<StageTransform> s0, s1;
  std::thread t0([&] { s0 = LearnStageTransform(f.config, p0, o, &r0, 0.0); });
  std::thread t1([&] { s1 = LearnStageTransform(f.config, p1, o, &r1, 0.0); });
  t0.join();
  t1.join();
  ASSERT_TRUE(s0.ok()) << s0.status();
  ASSERT_TRUE(s1.ok()) << s1.status();
  EXPECT_EQ(s0->r1, s1->r1);  // the same decisions from the same sums, bit for bit
  EXPECT_EQ(s0->report["loss_history"], s1->report["loss_history"]);

  // Up to summation order (1e-16 per round, grown by the steps; the round-to-nearest term is
  // piecewise, so a long run may part after a rounding flip — docs/methods/heroq.md).
  const ModelTransform staged = *AssembleModelTransform(f.config, {*s0, *s1});
  EXPECT_LT(MaxAbsDiff(staged.r1, whole.transform.r1), 1e-6);
  for (int l = 0; l < f.config.num_hidden_layers; ++l) {
    const LayerTransform &a = staged.layers[l], &b = whole.transform.layers[l];
    EXPECT_LT(MaxAbsDiff(a.r2, b.r2), 1e-6) << l;
    EXPECT_LT((a.log_attn - b.log_attn).cwiseAbs().maxCoeff(), 1e-6) << l;
    EXPECT_LT((a.log_ud - b.log_ud).cwiseAbs().maxCoeff(), 1e-6) << l;
  }
  const nlohmann::json merged = MergeTransformReports(o, {s0->report, s1->report});
  // The learned losses differ by what the learned parameters differ by (summation order, as
  // above: 1e-11..1e-9 on this machine, more on others, as the 1e-6 checks allow). To first
  // order |Δloss| ≤ Σ_θ |∂loss/∂θ|·|Δθ| over R1, every R2 and every diagonal, with the gradient
  // at one process's result; the factor 2 covers the second order (O(|Δθ|²), |Δθ| ≤ 1e-6) and
  // the gradient's own rounding. Plus the rounding of evaluating the loss at two points and of
  // summing the layers in another association, kEvalRounding·loss (below). So the check follows
  // the parameters, whatever BLAS's kernels made of them, while a stage dropped or counted
  // twice from the merge (Δloss ~ loss/2) fails by orders of magnitude.
  const ModelTransform& one = whole.transform;
  MatrixD g_r1 = MatrixD::Zero(one.r1.rows(), one.r1.cols());
  double first_order = 0;
  auto weighted = [](const auto& g, const auto& d) { return g.cwiseAbs().cwiseProduct(d.cwiseAbs()).sum(); };
  for (const std::vector<LayerProblem>* problems : {&p0, &p1}) {
    for (const LayerProblem& p : *problems) {
      const LayerTransform &a = staged.layers[p.layer], &b = one.layers[p.layer];
      const LayerObjectiveValue v = EvaluateLayerObjective(f.config, p, one.r1, b, o.learn.objective, true);
      g_r1 += v.g_r1;
      first_order += weighted(v.grad.r2, a.r2 - b.r2) + weighted(v.grad.log_attn, a.log_attn - b.log_attn) +
                     weighted(v.grad.log_mlp, a.log_mlp - b.log_mlp) + weighted(v.grad.log_vo, a.log_vo - b.log_vo) +
                     weighted(v.grad.log_ud, a.log_ud - b.log_ud);
    }
  }
  first_order += weighted(g_r1, staged.r1 - one.r1);
  // Rounding: each layer's 7 + 4 nonnegative terms come from double dot products of length
  // ≤ n (the intermediate size): n·u relative (u = 2^-53); λmax's power iteration stops at a
  // 1e-14 relative change; the L layer sums reassociate: L·u.
  const double u = std::numeric_limits<double>::epsilon() / 2;
  const double n = f.config.intermediate_size, layers = f.config.num_hidden_layers;
  const double kEvalRounding = 2 * (n * u + 1e-14) + layers * u;
  const double learned = whole.report["loss"]["learned"].get<double>();
  const double start = whole.report["loss"]["start"].get<double>();
  const double learned_diff = std::abs(merged["loss"]["learned"].get<double>() - learned);
  std::printf("learned loss %.17g: |Δ| %.3g, first-order bound %.3g, rounding %.3g\n", learned, learned_diff,
              first_order, kEvalRounding * learned);
  EXPECT_LE(learned_diff, 2 * first_order + kEvalRounding * learned);
  // The start is the same parameters on both sides (one seed; each layer's R2 seeded by its
  // index): only the rounding term.
  EXPECT_NEAR(merged["loss"]["start"].get<double>(), start, kEvalRounding * start);
  EXPECT_EQ(merged["start_candidates"], whole.report["start_candidates"]);
  EXPECT_EQ(merged["layers"].size(), static_cast<size_t>(f.config.num_hidden_layers));
  EXPECT_EQ(merged["stages"].size(), 2u);
  EXPECT_EQ(merged["accepted_steps"], whole.report["accepted_steps"]);
}

TEST(StageTransformTest, CodecRoundTripsExactlyAndRefusesDamage) {
  const Fixture& f = Fix();
  const TransformOutcome whole = *BuildModelTransform(f.config, *f.checkpoint, f.calib, Heroq(2), 4);
  StageTransform s;
  s.first_layer = 1;
  s.r1 = whole.transform.r1;
  s.layers = {whole.transform.layers[1], whole.transform.layers[2]};
  s.report = {{"loss", {{"start", 1.5}}}};
  const std::string bytes = EncodeStageTransform(s);
  const StageTransform back = *DecodeStageTransform(bytes, f.config);
  EXPECT_EQ(back.first_layer, 1);
  EXPECT_EQ(back.r1, s.r1);
  ASSERT_EQ(back.layers.size(), 2u);
  EXPECT_EQ(back.layers[1].r2, s.layers[1].r2);
  EXPECT_EQ(back.layers[1].log_vo, s.layers[1].log_vo);
  EXPECT_EQ(back.layers[0].log_mlp, s.layers[0].log_mlp);
  EXPECT_EQ(back.report, s.report);

  EXPECT_FALSE(DecodeStageTransform(bytes.substr(0, bytes.size() - 8), f.config).ok());
  EXPECT_FALSE(DecodeStageTransform("not a safetensors image", f.config).ok());
  ModelConfig shallow = f.config;
  shallow.num_hidden_layers = 2;  // layers [1, 3) do not fit
  const absl::StatusOr<StageTransform> refused = DecodeStageTransform(bytes, shallow);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss);
  ModelConfig wider = f.config;
  wider.hidden_size *= 2;  // R1 has the wrong shape
  EXPECT_FALSE(DecodeStageTransform(bytes, wider).ok());
}

TEST(StageTransformTest, RangesMustTileTheModel) {
  const Fixture& f = Fix();
  const ModelTransform id = IdentityModelTransform(f.config);
  auto range = [&](int first, int end) {
    StageTransform s;
    s.first_layer = first;
    s.r1 = id.r1;
    s.layers.assign(static_cast<size_t>(end - first), id.layers[0]);
    return s;
  };
  const int n = f.config.num_hidden_layers;
  EXPECT_TRUE(AssembleModelTransform(f.config, {range(0, 2), range(2, n)}).ok());
  EXPECT_EQ(AssembleModelTransform(f.config, {range(0, 2), range(3, n)}).status().code(),
            absl::StatusCode::kDataLoss);  // a gap
  EXPECT_FALSE(AssembleModelTransform(f.config, {range(0, 2)}).ok());  // short
  StageTransform other = range(2, n);
  other.r1(0, 0) += 1e-3;  // stages that disagree on R1
  EXPECT_FALSE(AssembleModelTransform(f.config, {range(0, 2), other}).ok());
}

TEST(StageTransformTest, OptionsAreValidated) {
  TransformOptions o = Heroq(1);
  EXPECT_TRUE(ValidateTransformOptions(o).ok());
  o.learn.iterations = -1;
  EXPECT_FALSE(ValidateTransformOptions(o).ok());
  o = Heroq(1);
  o.learn.objective.lambda = std::nan("");
  EXPECT_FALSE(ValidateTransformOptions(o).ok());
  o = Heroq(1);
  o.smooth_alpha = 1.5;
  EXPECT_FALSE(ValidateTransformOptions(o).ok());
}

}  // namespace
}  // namespace caliber
