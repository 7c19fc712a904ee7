// HeRo-Q's transforms on the tinyllama-en-outliers fixture: folded into the weights they
// leave the model's function unchanged (logits of the original vs. the transformed model, in
// memory and as a written checkpoint), the Hessians the objective predicts (M H Mᵀ) are the
// ones the transformed model produces, and learning lowers the objective without ever
// raising it.
#include "core/transform/model_transform.h"

#include <filesystem>
#include <limits>

#include <gtest/gtest.h>

#include "core/outliers_fixture.h"

#include "core/calib/model_quantizer.h"
#include "core/model/model.h"
#include "core/text/token_source.h"
#include "core/transform/fold.h"
#include "core/transform/layer_problem.h"
#include "core/transform/orthogonal.h"
#include "core/transform/transform_matrices.h"

namespace caliber {
namespace {

namespace fs = std::filesystem;

const std::string& kModelDir = testing_fixture::kOutliersModelDir;
using Fixture = testing_fixture::OutliersFixture;
const Fixture& Fix() { return testing_fixture::Outliers(); }

// Random rotations and diagonals (θ ~ ±0.5): far from the identity everywhere.
ModelTransform RandomTransform(const ModelConfig& c) {
  ModelTransform t = IdentityModelTransform(c);
  t.r1 = RandomizedHadamardOrOrthogonal(c.hidden_size, 1);
  uint64_t seed = 2;
  for (LayerTransform& l : t.layers) {
    l.r2 = RandomizedHadamardOrOrthogonal(c.head_dim, seed++);
    for (VectorD* v : {&l.log_attn, &l.log_mlp, &l.log_vo, &l.log_ud}) {
      const MatrixD r = RandomizedHadamardOrOrthogonal(static_cast<int>(v->size()), seed++);
      *v = 0.5 * std::sqrt(static_cast<double>(v->size())) * r.col(0);
    }
  }
  return t;
}

double MaxRelDiff(const MatrixF& a, const MatrixF& b) {
  return (a - b).cwiseAbs().maxCoeff() / b.cwiseAbs().maxCoeff();
}

TEST(ModelTransformTest, FoldedTransformKeepsTheFunction) {
  const Fixture& f = Fix();
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(kModelDir);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<int32_t> ids(f.calib.tokens.begin(), f.calib.tokens.begin() + 2 * 64);
  const MatrixF before = *(*model)->Forward(ids, 2);
  ModelWeights w = (*model)->weights();
  ApplyModelTransform(f.config, RandomTransform(f.config), w);
  // The transform really changed the weights.
  EXPECT_GT((w.layers[0].q.weight - (*model)->weights().layers[0].q.weight).cwiseAbs().maxCoeff(), 0.01);
  Model transformed(f.config, w);
  EXPECT_LT(MaxRelDiff(*transformed.Forward(ids, 2), before), 2e-5);

  // And written as a checkpoint of the same architecture.
  const std::string dir = ::testing::TempDir() + "/transformed-model";
  fs::remove_all(dir);
  ASSERT_TRUE(WriteTransformedModel(kModelDir, f.config, *f.checkpoint, RandomTransform(f.config), dir).ok());
  absl::StatusOr<std::unique_ptr<Model>> loaded = Model::Load(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_LT(MaxRelDiff(*(*loaded)->Forward(ids, 2), before), 2e-5);
  fs::remove_all(dir);
}

TEST(ModelTransformTest, PredictedHessiansAreTheTransformedModels) {
  const Fixture& f = Fix();
  const ModelTransform t = RandomTransform(f.config);
  const RopeTable rope(f.config, 64);
  MatrixF h0 = *EmbedCalibrationTokens(f.config, *f.checkpoint, f.calib);
  MatrixF h1 = h0 * t.r1.cast<float>();  // the transformed model's embeddings
  // Original layer 0 problem; then the transformed layer's own Hessians.
  const LayerProblem p = *BuildLayerProblem(f.config, rope, *f.checkpoint, 0, {8, 64}, 4, h0);
  const std::string dir = ::testing::TempDir() + "/transformed-model-2";
  fs::remove_all(dir);
  ASSERT_TRUE(WriteTransformedModel(kModelDir, f.config, *f.checkpoint, t, dir).ok());
  const std::unique_ptr<Checkpoint> ck = *Checkpoint::Open(dir);
  // BuildLayerProblem folds the transformed model's norms (D⁻¹) into its linears, so for the
  // inputs behind a norm it sees R1ᵀ n(h), and the module input is D⁻¹ of that.
  const LayerProblem q = *BuildLayerProblem(f.config, rope, *ck, 0, {8, 64}, 4, h1);
  const LayerTransformMatrices m = BuildTransformMatrices(f.config, t.r1, t.layers[0]);
  const VectorD inv_da = (-t.layers[0].log_attn.array()).exp();
  const VectorD inv_dm = (-t.layers[0].log_mlp.array()).exp();
  const VectorD inv_du = (-t.layers[0].log_ud.array()).exp();
  const MatrixD expect[4] = {
      m.m_attn * p.h[0] * m.m_attn.transpose(), m.m_o * p.h[1] * m.m_o.transpose(),
      m.m_mlp * p.h[2] * m.m_mlp.transpose(), inv_du.asDiagonal() * p.h[3] * inv_du.asDiagonal()};
  const MatrixD got[4] = {inv_da.asDiagonal() * q.h[0] * inv_da.asDiagonal(), q.h[1],
                          inv_dm.asDiagonal() * q.h[2] * inv_dm.asDiagonal(), q.h[3]};
  for (int g = 0; g < 4; ++g) {
    const double rel = (got[g] - expect[g]).norm() / expect[g].norm();
    EXPECT_LT(rel, 1e-4) << "group " << g;
  }
  fs::remove_all(dir);
}

TEST(ModelTransformTest, LearningNeverRaisesTheObjectiveAndBeatsItsStart) {
  const Fixture& f = Fix();
  TransformOptions o;
  o.kind = TransformKind::kHeroq;
  o.learn.iterations = 5;
  o.learn.objective.bits = 3;
  o.learn.objective.group_size = 128;
  absl::StatusOr<TransformOutcome> r = BuildModelTransform(f.config, *f.checkpoint, f.calib, o, 4);
  ASSERT_TRUE(r.ok()) << r.status();
  const std::vector<double> history = r->report["loss_history"];
  ASSERT_GE(history.size(), 2u);
  for (size_t i = 1; i < history.size(); ++i) EXPECT_LT(history[i], history[i - 1]);
  const double start = r->report["loss"]["start"], learned = r->report["loss"]["learned"];
  EXPECT_LT(learned, start);
  // The report evaluates the last accepted parameters again: the same terms, but λmax's power
  // iteration restarts from where the last (maybe rejected) proposal left it and stops at a
  // 1e-14 relative change, and its H̃·v products carry n·u (n = intermediate size, u = 2^-53).
  const double n = f.config.intermediate_size, u = std::numeric_limits<double>::epsilon() / 2;
  EXPECT_NEAR(learned, history.back(), 2 * (1e-14 + n * u) * learned);
  // Orthogonal results.
  const MatrixD& r1 = r->transform.r1;
  EXPECT_LT((r1 * r1.transpose() - MatrixD::Identity(r1.rows(), r1.rows())).cwiseAbs().maxCoeff(), 1e-10);
  // Deterministic.
  absl::StatusOr<TransformOutcome> again = BuildModelTransform(f.config, *f.checkpoint, f.calib, o, 4);
  EXPECT_EQ(again->transform.r1, r1);
  EXPECT_EQ(again->transform.layers[3].log_ud, r->transform.layers[3].log_ud);
}

TEST(ModelTransformTest, BaselinesAreTheirSingleIngredient) {
  const Fixture& f = Fix();
  TransformOptions o;
  o.kind = TransformKind::kQuaRot;
  const TransformOutcome quarot = *BuildModelTransform(f.config, *f.checkpoint, f.calib, o, 4);
  EXPECT_EQ(quarot.transform.layers[0].log_attn, VectorD::Zero(f.config.hidden_size));
  EXPECT_NE(quarot.transform.r1, MatrixD::Identity(f.config.hidden_size, f.config.hidden_size));
  o.kind = TransformKind::kSmoothQuant;
  const TransformOutcome smooth = *BuildModelTransform(f.config, *f.checkpoint, f.calib, o, 4);
  EXPECT_EQ(smooth.transform.r1, MatrixD::Identity(f.config.hidden_size, f.config.hidden_size));
  EXPECT_GT(smooth.transform.layers[0].log_attn.cwiseAbs().maxCoeff(), 0.1);
  EXPECT_FALSE(ParseTransformKind("spin").ok());
}

}  // namespace
}  // namespace caliber
