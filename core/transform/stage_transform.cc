#include "core/transform/stage_transform.h"

#include <algorithm>
#include <array>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/model/rope.h"
#include "core/transform/heroq_learner.h"
#include "core/transform/layer_problem.h"
#include "core/transform/orthogonal.h"
#include "core/transform/smooth_init.h"
#include "core/transform/spectrum.h"
#include "core/transform/transform_matrices.h"

namespace caliber {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

nlohmann::json SpectrumJson(const SpectrumSummary& s) {
  return {{"lambda_max", s.lambda_max}, {"trace", s.trace}, {"damped_condition", s.damped_condition}};
}

// H̃ of each input for a layer transform (as the objective forms them).
std::array<MatrixD, 4> TransformedHessians(const ModelConfig& c, const LayerProblem& p, const MatrixD& r1,
                                           const LayerTransform& t) {
  const LayerTransformMatrices m = BuildTransformMatrices(c, r1, t);
  const VectorD inv_du = m.d_u.cwiseInverse();
  return {m.m_attn * p.h[0] * m.m_attn.transpose(), m.m_o * p.h[1] * m.m_o.transpose(),
          m.m_mlp * p.h[2] * m.m_mlp.transpose(), inv_du.asDiagonal() * p.h[3] * inv_du.asDiagonal()};
}

double RangeLoss(const ModelConfig& config, const std::vector<LayerProblem>& problems, const MatrixD& r1,
                 const std::vector<LayerTransform>& layers, const HeroqObjectiveOptions& objective) {
  double loss = 0;
  for (size_t i = 0; i < problems.size(); ++i) {
    loss += EvaluateLayerObjective(config, problems[i], r1, layers[i], objective, false).loss;
  }
  return loss;
}

// Rounds after the first `offset` ones: the learner numbers its rounds from 0.
class OffsetReducer final : public ShareReducer {
 public:
  OffsetReducer(ShareReducer* base, int offset) : base_(base), offset_(offset) {}
  absl::StatusOr<ShareValue> Sum(int round, const ShareValue& mine) override {
    return base_->Sum(round + offset_, mine);
  }

 private:
  ShareReducer* base_;
  int offset_;
};

}  // namespace

void StartTransform(const ModelConfig& config, const std::vector<LayerProblem>& problems,
                    const TransformOptions& options, bool rotate, bool smooth, MatrixD& r1,
                    std::vector<LayerTransform>& layers) {
  r1 = rotate ? RandomizedHadamardOrOrthogonal(config.hidden_size, options.seed)
              : MatrixD::Identity(config.hidden_size, config.hidden_size);
  layers.assign(problems.size(), IdentityLayerTransform(config));
  for (size_t i = 0; i < problems.size(); ++i) {
    const uint64_t layer = static_cast<uint64_t>(problems[i].layer);
    if (rotate) layers[i].r2 = RandomizedHadamardOrOrthogonal(config.head_dim, options.seed + 1 + layer);
    if (smooth) SmoothQuantInit(config, problems[i], r1, options.smooth_alpha, layers[i]);
  }
}

absl::StatusOr<std::vector<LayerProblem>> BuildLayerProblems(const ModelConfig& config,
                                                             const Checkpoint& checkpoint, int first, int end,
                                                             const SequenceBatch& samples, int batch_seqs,
                                                             MatrixF& hidden) {
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    return absl::InvalidArgumentError("transforms need num_attention_heads divisible by num_key_value_heads");
  }
  const RopeTable rope(config, samples.seq_len);
  std::vector<LayerProblem> problems;
  for (int l = first; l < end; ++l) {
    absl::StatusOr<LayerProblem> p = BuildLayerProblem(config, rope, checkpoint, l, samples, batch_seqs, hidden);
    if (!p.ok()) return p.status();
    problems.push_back(*std::move(p));
  }
  return problems;
}

StageDescription DescribeStageTransform(const ModelConfig& config, const std::vector<LayerProblem>& problems,
                                        const MatrixD& r1_start, const std::vector<LayerTransform>& start,
                                        const MatrixD& r1, const std::vector<LayerTransform>& layers,
                                        const std::vector<double>& layer_seconds, const HeroqObjectiveOptions& obj) {
  const MatrixD identity_r1 = MatrixD::Identity(config.hidden_size, config.hidden_size);
  const LayerTransform identity = IdentityLayerTransform(config);
  static constexpr const char* kGroups[4] = {"qkv", "o", "gate_up", "down"};
  StageDescription d;
  for (size_t i = 0; i < problems.size(); ++i) {
    const LayerProblem& p = problems[i];
    const LayerObjectiveValue a = EvaluateLayerObjective(config, p, identity_r1, identity, obj, false);
    const LayerObjectiveValue b = EvaluateLayerObjective(config, p, r1_start, start[i], obj, false);
    const LayerObjectiveValue c = EvaluateLayerObjective(config, p, r1, layers[i], obj, false);
    d.loss_identity += a.loss;
    d.loss_start += b.loss;
    d.loss_learned += c.loss;
    nlohmann::json modules = nlohmann::json::object();
    for (const LinearModule m : kAllLinearModules) {
      const int k = static_cast<int>(m);
      modules[std::string(LinearModuleName(m))] = {{"rtn_rel_error_untransformed", a.quant[k]},
                                                   {"rtn_rel_error_start", b.quant[k]},
                                                   {"rtn_rel_error_transformed", c.quant[k]}};
    }
    const std::array<MatrixD, 4> ht = TransformedHessians(config, p, r1, layers[i]);
    nlohmann::json inputs = nlohmann::json::object();
    for (int g = 0; g < 4; ++g) {
      inputs[kGroups[g]] = {{"h", SpectrumJson(SummarizeSpectrum(p.h[g]))},
                            {"h_transformed", SpectrumJson(SummarizeSpectrum(ht[g]))}};
    }
    d.layers.push_back(
        {{"layer", p.layer}, {"learning_seconds", layer_seconds[i]}, {"modules", modules}, {"inputs", inputs}});
  }
  return d;
}

absl::StatusOr<StageTransform> LearnStageTransform(const ModelConfig& config,
                                                   const std::vector<LayerProblem>& problems,
                                                   const TransformOptions& options, ShareReducer* reducer,
                                                   double hessian_seconds, std::vector<LearnCheckpoint>* checkpoints) {
  if (problems.empty()) return absl::InvalidArgumentError("a transform stage needs at least one layer");
  StageTransform out;
  out.first_layer = problems.front().layer;
  const bool rotate = options.kind == TransformKind::kQuaRot || options.kind == TransformKind::kHeroq;
  const bool smooth = options.kind == TransformKind::kSmoothQuant || options.kind == TransformKind::kHeroq;
  StartTransform(config, problems, options, rotate, smooth, out.r1, out.layers);
  // heroq, best start: the Hadamard rotations spread outliers but can raise the round-to-
  // nearest error where the diagonals already balanced the channels; the objective (over every
  // layer: one reduction round per candidate) decides.
  nlohmann::json starts = nlohmann::json::object();
  int rounds_used = 0;
  if (options.kind == TransformKind::kHeroq && options.start == HeroqStart::kBest) {
    MatrixD r1_plain;
    std::vector<LayerTransform> plain;
    StartTransform(config, problems, options, false, true, r1_plain, plain);
    double loss[2];
    const std::pair<const MatrixD*, const std::vector<LayerTransform>*> candidates[2] = {{&out.r1, &out.layers},
                                                                                         {&r1_plain, &plain}};
    for (int c = 0; c < 2; ++c) {
      ShareValue mine{RangeLoss(config, problems, *candidates[c].first, *candidates[c].second, options.learn.objective),
                      MatrixD::Zero(config.hidden_size, config.hidden_size)};
      if (reducer != nullptr) {
        absl::StatusOr<ShareValue> total = reducer->Sum(rounds_used++, mine);
        if (!total.ok()) return total.status();
        mine = *std::move(total);
      }
      loss[c] = mine.loss;
    }
    starts = {{"hadamard_smoothquant", loss[0]}, {"smoothquant", loss[1]}};
    if (loss[1] < loss[0]) {
      out.r1 = std::move(r1_plain);
      out.layers = std::move(plain);
    }
    starts["chosen"] = loss[1] < loss[0] ? "smoothquant" : "hadamard_smoothquant";
  }
  const MatrixD r1_start = out.r1;
  const std::vector<LayerTransform> start = out.layers;

  HeroqLearnHistory history;
  std::vector<double> layer_seconds(problems.size(), 0.0);
  const auto learn_start = std::chrono::steady_clock::now();
  if (options.kind == TransformKind::kHeroq && options.learn.iterations > 0) {
    std::vector<const LayerProblem*> ptrs;
    for (const LayerProblem& p : problems) ptrs.push_back(&p);
    LocalTransformShare share(config, ptrs, out.layers, options.learn);
    OffsetReducer offset(reducer, rounds_used);
    LearnStepCallback keep;
    if (checkpoints != nullptr) {
      keep = [&](int steps, const MatrixD& r1) {
        if (steps % options.checkpoint_every == 0 || steps == options.learn.iterations) {
          checkpoints->push_back({steps, r1, share.transforms()});
        }
      };
    }
    absl::StatusOr<MatrixD> r1 = LearnTransforms(out.r1, {&share}, reducer == nullptr ? nullptr : &offset,
                                                 options.learn, &history, keep);
    if (!r1.ok()) return r1.status();
    out.r1 = *std::move(r1);
    out.layers = share.transforms();
    layer_seconds = share.layer_seconds();
  }
  const double learn_seconds = Seconds(learn_start);

  StageDescription d = DescribeStageTransform(config, problems, r1_start, start, out.r1, out.layers, layer_seconds,
                                              options.learn.objective);
  out.report = {{"first_layer", out.first_layer},
                {"end_layer", out.first_layer + static_cast<int>(problems.size())},
                {"accepted_steps", history.accepted},
                {"rejected_steps", history.rejected},
                {"loss", {{"untransformed", d.loss_identity}, {"start", d.loss_start}, {"learned", d.loss_learned}}},
                {"loss_history", history.loss},
                {"starts", starts},
                {"seconds", {{"hessians", hessian_seconds}, {"learning", learn_seconds}}},
                {"layers", std::move(d.layers)}};
  return out;
}

absl::StatusOr<ModelTransform> AssembleModelTransform(const ModelConfig& config,
                                                      const std::vector<StageTransform>& stages) {
  ModelTransform t = IdentityModelTransform(config);
  int next = 0;
  for (size_t s = 0; s < stages.size(); ++s) {
    const StageTransform& st = stages[s];
    if (st.first_layer != next) {
      return absl::DataLossError(absl::StrCat("transform stage ", s, " starts at layer ", st.first_layer,
                                              ", expected ", next));
    }
    if (st.r1.rows() != config.hidden_size || st.r1.cols() != config.hidden_size) {
      return absl::DataLossError(absl::StrCat("transform stage ", s, " has an R1 of the wrong size"));
    }
    // Every stage took the same steps from the same sums: their R1s agree exactly.
    if (s > 0 && st.r1 != stages[0].r1) {
      return absl::DataLossError(absl::StrCat("transform stage ", s, " learned a different R1 than stage 0"));
    }
    for (const LayerTransform& l : st.layers) {
      if (next >= config.num_hidden_layers) return absl::DataLossError("transform stages cover too many layers");
      t.layers[static_cast<size_t>(next++)] = l;
    }
  }
  if (next != config.num_hidden_layers) {
    return absl::DataLossError(absl::StrCat("transform stages cover ", next, " of ", config.num_hidden_layers,
                                            " layers"));
  }
  if (!stages.empty()) t.r1 = stages[0].r1;
  return t;
}

nlohmann::json MergeTransformReports(const TransformOptions& options, const std::vector<nlohmann::json>& parts) {
  const HeroqObjectiveOptions& obj = options.learn.objective;
  nlohmann::json layers = nlohmann::json::array();
  nlohmann::json stages = nlohmann::json::array();
  double loss[3] = {0, 0, 0};
  double hessians = 0, learning = 0;
  static constexpr const char* kLoss[3] = {"untransformed", "start", "learned"};
  for (const nlohmann::json& p : parts) {
    for (const nlohmann::json& l : p["layers"]) layers.push_back(l);
    for (int i = 0; i < 3; ++i) loss[i] += p["loss"][kLoss[i]].get<double>();
    const double h = p["seconds"]["hessians"].get<double>(), g = p["seconds"]["learning"].get<double>();
    // Stages run concurrently: the job waits for the slowest.
    hessians = std::max(hessians, h);
    learning = std::max(learning, g);
    stages.push_back({{"first_layer", p["first_layer"]}, {"end_layer", p["end_layer"]},
                      {"hessian_seconds", h}, {"learning_seconds", g}});
  }
  const nlohmann::json first = parts.empty() ? nlohmann::json::object() : parts.front();
  nlohmann::json history = first.value("loss_history", nlohmann::json::array());
  if (history.empty()) history.push_back(loss[1]);  // no learning: the start is all there is
  nlohmann::json merged = {{"kind", std::string(TransformKindName(options.kind))},
          {"seed", options.seed},
          {"smooth_alpha", options.smooth_alpha},
          {"objective",
           {{"bits", obj.bits}, {"group_size", obj.group_size}, {"sym", obj.sym}, {"lambda", obj.lambda},
            {"act_bits", obj.act_bits}}},
          {"iterations", options.kind == TransformKind::kHeroq ? options.learn.iterations : 0},
          {"rotation_step", options.learn.rotation_step},
          {"diagonal_step", options.learn.diagonal_step},
          {"start", std::string(HeroqStartName(options.start))},
          {"start_candidates", first.value("starts", nlohmann::json::object())},
          {"accepted_steps", first.value("accepted_steps", 0)},
          {"rejected_steps", first.value("rejected_steps", 0)},
          {"loss", {{"untransformed", loss[0]}, {"start", loss[1]}, {"learned", loss[2]}}},
          {"loss_history", history},
          {"seconds", {{"hessians", hessians}, {"learning", learning}, {"total", hessians + learning}}},
          {"stages", stages},
          {"layers", layers}};
  // The validated selection (one process only, for now: validated_selection.h).
  if (first.contains("selection")) merged["selection"] = first["selection"];
  return merged;
}

}  // namespace caliber
