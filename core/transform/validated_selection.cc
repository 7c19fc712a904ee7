#include "core/transform/validated_selection.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/transform/gptq_validation.h"
#include "core/transform/heldout_margin.h"

namespace caliber {
namespace {

TransformCandidate Start(const ModelConfig& config, const std::vector<LayerProblem>& problems,
                         const TransformOptions& options, std::string name, bool rotate, bool smooth,
                         double alpha) {
  TransformOptions o = options;
  o.smooth_alpha = alpha;
  TransformCandidate c{std::move(name), {}, {}};
  StartTransform(config, problems, o, rotate, smooth, c.r1, c.layers);
  return c;
}

std::string AlphaName(double alpha) { return absl::StrFormat("smoothquant_a%g", alpha); }

// The fixed candidates of options.kind, identity first.
std::vector<TransformCandidate> FixedCandidates(const ModelConfig& config, const std::vector<LayerProblem>& train,
                                                const TransformOptions& options) {
  std::vector<TransformCandidate> out;
  out.push_back(Start(config, train, options, "identity", false, false, options.smooth_alpha));
  const TransformKind kind = options.kind;
  if (kind == TransformKind::kQuaRot || kind == TransformKind::kHeroq) {
    out.push_back(Start(config, train, options, "quarot", true, false, options.smooth_alpha));
  }
  if (kind == TransformKind::kSmoothQuant) {
    out.push_back(Start(config, train, options, AlphaName(options.smooth_alpha), false, true, options.smooth_alpha));
  }
  if (kind == TransformKind::kHeroq) {
    std::vector<double> alphas = {0.25, 0.5, 0.75, options.smooth_alpha};
    std::sort(alphas.begin(), alphas.end());
    alphas.erase(std::unique(alphas.begin(), alphas.end()), alphas.end());
    for (const double a : alphas) out.push_back(Start(config, train, options, AlphaName(a), false, true, a));
    out.push_back(Start(config, train, options, "hadamard_smoothquant", true, true, options.smooth_alpha));
  }
  return out;
}

nlohmann::json LayerPairs(const std::vector<LayerProblem>& problems, const std::vector<double>& train,
                          const std::vector<double>& validation) {
  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < problems.size(); ++i) {
    layers.push_back({{"layer", problems[i].layer}, {"train", train[i]}, {"validation", validation[i]}});
  }
  return layers;
}

double Sum(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); }

}  // namespace

std::vector<double> LayerObjectives(const ModelConfig& config, const std::vector<LayerProblem>& problems,
                                    const MatrixD& r1, const std::vector<LayerTransform>& layers,
                                    const HeroqObjectiveOptions& objective) {
  std::vector<double> out;
  out.reserve(problems.size());
  for (size_t i = 0; i < problems.size(); ++i) {
    out.push_back(EvaluateLayerObjective(config, problems[i], r1, layers[i], objective, false).loss);
  }
  return out;
}

absl::StatusOr<StageTransform> SelectValidatedTransform(const ModelConfig& config,
                                                        const std::vector<LayerProblem>& train,
                                                        const std::vector<LayerProblem>& validation,
                                                        const TransformOptions& options, double hessian_seconds,
                                                        const CandidateScorer& score) {
  const bool nll = options.selection_objective == SelectionObjective::kNll;
  if (nll && !score) {
    return absl::InvalidArgumentError(
        "selection objective nll needs the quantize-and-evaluate scorer (one-process caliber quantize only)");
  }
  if (train.empty() || train.size() != validation.size()) {
    return absl::InvalidArgumentError("validated selection needs the same non-empty layers in both parts");
  }
  for (size_t i = 0; i < train.size(); ++i) {
    if (train[i].layer != validation[i].layer) {
      return absl::InvalidArgumentError(absl::StrCat("validation layer ", validation[i].layer,
                                                     " does not match training layer ", train[i].layer));
    }
  }
  std::vector<LearnCheckpoint> checkpoints;
  absl::StatusOr<StageTransform> learned =
      LearnStageTransform(config, train, options, /*reducer=*/nullptr, hessian_seconds, &checkpoints);
  if (!learned.ok()) return learned.status();

  std::vector<TransformCandidate> candidates = FixedCandidates(config, train, options);
  if (options.kind == TransformKind::kHeroq) {
    for (LearnCheckpoint& c : checkpoints) {
      candidates.push_back({absl::StrCat("heroq_step", c.steps), std::move(c.r1), std::move(c.layers)});
    }
    // Learning stops early once the step scale underflows: its end is a candidate too.
    const int steps = learned->report["accepted_steps"].get<int>() + learned->report["rejected_steps"].get<int>();
    if (checkpoints.empty() || checkpoints.back().steps != steps) {
      candidates.push_back({absl::StrCat("heroq_step", steps), learned->r1, learned->layers});
    }
  }

  // Each nll candidate costs a quantization of the model: keep identity, the kind's own start
  // (SmoothQuant at options.smooth_alpha, Hadamard + SmoothQuant, QuaRot for quarot) and the end
  // of learning.
  if (nll) {
    std::vector<TransformCandidate> kept;
    for (size_t c = 0; c < candidates.size(); ++c) {
      const std::string& n = candidates[c].name;
      const bool learned_end = c + 1 == candidates.size() && n.rfind("heroq_step", 0) == 0;
      const bool keep = n == "identity" || n == AlphaName(options.smooth_alpha) || n == "hadamard_smoothquant" ||
                        (n == "quarot" && options.kind == TransformKind::kQuaRot) || learned_end;
      if (keep) kept.push_back(std::move(candidates[c]));
    }
    candidates = std::move(kept);
  }

  const HeroqObjectiveOptions& obj = options.learn.objective;
  nlohmann::json listed = nlohmann::json::array();
  std::vector<std::vector<double>> train_objective, validation_objective, segment_nll;
  size_t chosen = 0;
  for (size_t c = 0; c < candidates.size(); ++c) {
    std::vector<double> t, v;
    if (options.selection_objective == SelectionObjective::kGptq) {
      absl::StatusOr<std::vector<GptqLayerObjective>> g = GptqLayerObjectives(
          config, train, validation, candidates[c].r1, candidates[c].layers, options.selection_spec);
      if (!g.ok()) return g.status();
      for (const GptqLayerObjective& l : *g) {
        t.push_back(l.train);
        v.push_back(l.validation);
      }
    } else {
      t = LayerObjectives(config, train, candidates[c].r1, candidates[c].layers, obj);
      v = LayerObjectives(config, validation, candidates[c].r1, candidates[c].layers, obj);
    }
    nlohmann::json entry = {{"name", candidates[c].name}, {"train", Sum(t)}, {"validation", Sum(v)},
                            {"layers", LayerPairs(train, t, v)}};
    if (nll) {
      const auto t0 = std::chrono::steady_clock::now();
      absl::StatusOr<std::vector<double>> s = score(candidates[c]);
      if (!s.ok()) return s.status();
      if (s->empty()) return absl::InternalError("the held-out scorer returned no segments");
      absl::StatusOr<PairedDifference> d = PairedNllDifference(*s, segment_nll.empty() ? *s : segment_nll[0]);
      if (!d.ok()) return d.status();
      entry["heldout_nll"] = Sum(*s) / static_cast<double>(s->size());
      entry["heldout_segment_nll"] = *s;
      entry["vs_identity"] = {{"mean", d->mean}, {"standard_error", d->standard_error}};
      entry["nll_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      segment_nll.push_back(*std::move(s));
    } else if (c == 0 || Sum(v) < Sum(validation_objective[chosen])) {  // strict: the earlier wins a tie
      chosen = c;
    }
    listed.push_back(std::move(entry));
    train_objective.push_back(std::move(t));
    validation_objective.push_back(std::move(v));
  }
  if (nll) {
    absl::StatusOr<size_t> c = ChooseByHeldoutNll(segment_nll, options.selection_margin);
    if (!c.ok()) return c.status();
    chosen = *c;
  }
  const std::vector<double>& chosen_train = train_objective[chosen];
  const std::vector<double>& chosen_validation = validation_objective[chosen];

  StageTransform out = *std::move(learned);
  out.r1 = std::move(candidates[chosen].r1);
  out.layers = std::move(candidates[chosen].layers);

  // Describe the chosen transform next to the learner's start (as LearnStageTransform does).
  MatrixD r1_start;
  std::vector<LayerTransform> start;
  const bool plain_start = out.report["starts"].value("chosen", "") == "smoothquant";
  const bool rotate = !plain_start && (options.kind == TransformKind::kQuaRot || options.kind == TransformKind::kHeroq);
  const bool smooth = options.kind == TransformKind::kSmoothQuant || options.kind == TransformKind::kHeroq;
  StartTransform(config, train, options, rotate, smooth, r1_start, start);
  std::vector<double> layer_seconds;
  for (const nlohmann::json& l : out.report["layers"]) layer_seconds.push_back(l["learning_seconds"].get<double>());
  StageDescription d = DescribeStageTransform(config, train, r1_start, start, out.r1, out.layers, layer_seconds, obj);
  for (size_t i = 0; i < d.layers.size(); ++i) {
    d.layers[i]["objective"] = {{"train", chosen_train[i]}, {"validation", chosen_validation[i]}};
  }
  out.report["layers"] = std::move(d.layers);
  out.report["loss"] = {{"untransformed", d.loss_identity}, {"start", d.loss_start}, {"learned", d.loss_learned}};
  out.report["selection"] = {{"chosen", candidates[chosen].name},
                             {"objective", std::string(SelectionObjectiveName(options.selection_objective))},
                             {"checkpoint_every", options.checkpoint_every},
                             {"candidates", std::move(listed)}};
  if (nll) out.report["selection"]["margin"] = options.selection_margin;
  return out;
}

}  // namespace caliber
