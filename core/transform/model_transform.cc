#include "core/transform/model_transform.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "core/calib/model_quantizer.h"
#include "core/io/model_files.h"
#include "core/model/rope.h"
#include "core/model/weights.h"
#include "core/transform/fold.h"
#include "core/transform/segment_split.h"
#include "core/transform/stage_transform.h"
#include "core/transform/validated_selection.h"

namespace caliber {
namespace {

namespace fs = std::filesystem;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// The validated selection (validated_selection.h): one fp pass over each part. The parts are the
// calibration segments and `spare` windows of the stream when given (validation_windows > 0),
// else a seeded split of the segments.
absl::StatusOr<TransformOutcome> BuildValidatedModelTransform(const ModelConfig& config, const Checkpoint& checkpoint,
                                                              const CalibrationSet& calib,
                                                              const TransformOptions& options, int batch_seqs,
                                                              const CalibrationSet* spare,
                                                              std::chrono::steady_clock::time_point start,
                                                              const HeldoutNllScorer& score) {
  CalibrationSet parts[2];
  SegmentSplit split;
  const bool windows = spare != nullptr && spare->nsamples > 0;
  if (windows) {
    if (spare->seq_len != calib.seq_len) {
      return absl::InvalidArgumentError(absl::StrCat("validation windows of ", spare->seq_len,
                                                     " tokens, calibration segments of ", calib.seq_len));
    }
    parts[0] = calib;
    parts[1] = *spare;
  } else {
    absl::StatusOr<SegmentSplit> s = SplitSegments(calib.nsamples, options.validation_fraction, options.seed);
    if (!s.ok()) return s.status();
    split = *std::move(s);
    parts[0] = SubsetOfSegments(calib, split.train);
    parts[1] = SubsetOfSegments(calib, split.validation);
  }
  std::vector<LayerProblem> problems[2];
  for (int k = 0; k < 2; ++k) {
    absl::StatusOr<MatrixF> hidden = EmbedCalibrationTokens(config, checkpoint, parts[k]);
    if (!hidden.ok()) return hidden.status();
    absl::StatusOr<std::vector<LayerProblem>> p =
        BuildLayerProblems(config, checkpoint, 0, config.num_hidden_layers, {parts[k].nsamples, parts[k].seq_len},
                           batch_seqs, *hidden);
    if (!p.ok()) return p.status();
    problems[k] = *std::move(p);
  }
  CandidateScorer candidate_score;
  if (score) {
    candidate_score = [&](const TransformCandidate& c) -> absl::StatusOr<std::vector<double>> {
      StageTransform st;
      st.first_layer = 0;
      st.r1 = c.r1;
      st.layers = c.layers;
      absl::StatusOr<ModelTransform> t = AssembleModelTransform(config, {st});
      if (!t.ok()) return t.status();
      return score(*t, parts[0], parts[1]);
    };
  }
  absl::StatusOr<StageTransform> stage =
      SelectValidatedTransform(config, problems[0], problems[1], options, Seconds(start), candidate_score);
  if (!stage.ok()) return stage.status();
  absl::StatusOr<ModelTransform> t = AssembleModelTransform(config, {*stage});
  if (!t.ok()) return t.status();
  TransformOutcome out;
  out.transform = *std::move(t);
  out.report = MergeTransformReports(options, {stage->report});
  nlohmann::json& sel = out.report["selection"];
  sel["mode"] = std::string(TransformSelectionName(options.selection));
  if (windows) {
    sel["validation_source"] = "spare_windows";
    sel["train_segments"] = calib.nsamples;
    sel["validation_windows"] = spare->window_index;
  } else {
    sel["validation_source"] = "segments";
    sel["validation_fraction"] = options.validation_fraction;
    sel["train_segments"] = split.train.size();
    sel["validation_segments"] = split.validation;
  }
  out.seconds = Seconds(start);
  return out;
}

}  // namespace

absl::StatusOr<MethodPlan> PlanMethod(std::string_view method, std::string_view transform_flag) {
  absl::StatusOr<TransformKind> kind = ParseTransformKind(transform_flag.empty() ? "none" : transform_flag);
  if (!kind.ok()) return kind.status();
  constexpr std::string_view kPrefix = "heroq_";
  if (method.substr(0, kPrefix.size()) == kPrefix) {
    if (*kind != TransformKind::kNone && *kind != TransformKind::kHeroq) {
      return absl::InvalidArgumentError(absl::StrCat("method '", std::string(method), "' already sets the transform; got --transform ",
                                                     std::string(transform_flag)));
    }
    return MethodPlan{std::string(method.substr(kPrefix.size())), TransformKind::kHeroq};
  }
  return MethodPlan{std::string(method), *kind};
}

absl::StatusOr<TransformOutcome> BuildModelTransform(const ModelConfig& config, const Checkpoint& checkpoint,
                                                     const CalibrationSet& calib,
                                                     const TransformOptions& options, int batch_seqs,
                                                     const HeldoutNllScorer& score,
                                                     const CalibrationSet* validation_windows) {
  const auto start = std::chrono::steady_clock::now();
  TransformOutcome out;
  out.transform = IdentityModelTransform(config);
  if (options.kind == TransformKind::kNone) return out;
  if (absl::Status s = ValidateTransformOptions(options); !s.ok()) return s;
  if (options.selection == TransformSelection::kValidated) {
    return BuildValidatedModelTransform(config, checkpoint, calib, options, batch_seqs, validation_windows, start,
                                        score);
  }
  if (validation_windows != nullptr && validation_windows->nsamples > 0) {
    return absl::InvalidArgumentError("validation windows need the validated transform selection");
  }

  // Hessians of the folded fp model, layer by layer.
  absl::StatusOr<MatrixF> hidden = EmbedCalibrationTokens(config, checkpoint, calib);
  if (!hidden.ok()) return hidden.status();
  absl::StatusOr<std::vector<LayerProblem>> problems = BuildLayerProblems(
      config, checkpoint, 0, config.num_hidden_layers, {calib.nsamples, calib.seq_len}, batch_seqs, *hidden);
  if (!problems.ok()) return problems.status();
  absl::StatusOr<StageTransform> stage =
      LearnStageTransform(config, *problems, options, /*reducer=*/nullptr, Seconds(start));
  if (!stage.ok()) return stage.status();
  absl::StatusOr<ModelTransform> t = AssembleModelTransform(config, {*stage});
  if (!t.ok()) return t.status();
  out.transform = *std::move(t);
  out.report = MergeTransformReports(options, {stage->report});
  out.seconds = Seconds(start);
  return out;
}

absl::Status WriteTransformedModel(const std::string& source_dir, const ModelConfig& config,
                                   const Checkpoint& checkpoint, const ModelTransform& transform,
                                   const std::string& out_dir) {
  absl::StatusOr<ModelWeights> w = LoadModelWeights(config, checkpoint);
  if (!w.ok()) return w.status();
  ApplyModelTransform(config, transform, *w);

  SafetensorsWriter writer;
  auto add = [&writer](const std::string& name, const float* data, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return writer.AddFloat(name, DType::kF32, std::move(shape), absl::MakeConstSpan(data, static_cast<size_t>(n)));
  };
  auto add_matrix = [&](const std::string& name, const MatrixF& m) { return add(name, m.data(), {m.rows(), m.cols()}); };
  auto add_vector = [&](const std::string& name, const VectorF& v) { return add(name, v.data(), {v.size()}); };
  absl::Status s = add_matrix("model.embed_tokens.weight", w->embed_tokens);
  for (int l = 0; s.ok() && l < config.num_hidden_layers; ++l) {
    const LayerWeights& lw = w->layers[l];
    for (const LinearModule m : kAllLinearModules) {
      const std::string base = LayerTensorName(l, LinearModuleName(m));
      if (s.ok()) s = add_matrix(base + ".weight", lw.linear(m).weight);
      if (s.ok() && lw.linear(m).bias.size() > 0) s = add_vector(base + ".bias", lw.linear(m).bias);
    }
    if (s.ok()) s = add_vector(LayerTensorName(l, "input_layernorm.weight"), lw.input_norm);
    if (s.ok()) s = add_vector(LayerTensorName(l, "post_attention_layernorm.weight"), lw.post_attention_norm);
    if (s.ok() && lw.q_norm.size() > 0) s = add_vector(LayerTensorName(l, "self_attn.q_norm.weight"), lw.q_norm);
    if (s.ok() && lw.k_norm.size() > 0) s = add_vector(LayerTensorName(l, "self_attn.k_norm.weight"), lw.k_norm);
  }
  if (s.ok()) s = add_vector("model.norm.weight", w->final_norm);
  if (s.ok()) s = add_matrix("lm_head.weight", w->lm_head);
  if (!s.ok()) return s;

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", out_dir, ": ", ec.message()));
  if (absl::Status ws = writer.WriteFile((fs::path(out_dir) / "model.safetensors").string()); !ws.ok()) return ws;

  absl::StatusOr<nlohmann::json> cfg = ReadConfigJson(source_dir);
  if (!cfg.ok()) return cfg.status();
  (*cfg)["tie_word_embeddings"] = false;  // embeddings E·R1 and head W·diag(g)·R1 now differ
  std::ofstream(fs::path(out_dir) / "config.json") << cfg->dump(2) << "\n";
  return CopyTokenizerFiles(source_dir, out_dir);
}

}  // namespace caliber
