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
#include "core/transform/layer_problem.h"
#include "core/transform/orthogonal.h"
#include "core/transform/smooth_init.h"
#include "core/transform/spectrum.h"
#include "core/transform/transform_matrices.h"

namespace caliber {
namespace {

namespace fs = std::filesystem;

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

}  // namespace

absl::StatusOr<TransformKind> ParseTransformKind(std::string_view name) {
  if (name == "none") return TransformKind::kNone;
  if (name == "quarot") return TransformKind::kQuaRot;
  if (name == "smoothquant") return TransformKind::kSmoothQuant;
  if (name == "heroq") return TransformKind::kHeroq;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown transform '", std::string(name), "' (none, quarot, smoothquant, heroq)"));
}

std::string_view TransformKindName(TransformKind kind) {
  switch (kind) {
    case TransformKind::kNone: return "none";
    case TransformKind::kQuaRot: return "quarot";
    case TransformKind::kSmoothQuant: return "smoothquant";
    case TransformKind::kHeroq: return "heroq";
  }
  return "none";
}

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
                                                     const TransformOptions& options, int batch_seqs) {
  const auto start = std::chrono::steady_clock::now();
  TransformOutcome out;
  out.transform = IdentityModelTransform(config);
  if (options.kind == TransformKind::kNone) return out;
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    return absl::InvalidArgumentError("transforms need num_attention_heads divisible by num_key_value_heads");
  }

  // Hessians of the folded fp model, layer by layer.
  absl::StatusOr<MatrixF> hidden = EmbedCalibrationTokens(config, checkpoint, calib);
  if (!hidden.ok()) return hidden.status();
  const RopeTable rope(config, calib.seq_len);
  std::vector<LayerProblem> problems;
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    absl::StatusOr<LayerProblem> p =
        BuildLayerProblem(config, rope, checkpoint, l, {calib.nsamples, calib.seq_len}, batch_seqs, *hidden);
    if (!p.ok()) return p.status();
    problems.push_back(*std::move(p));
  }
  const double hessian_seconds = Seconds(start);

  // Start: rotations and/or diagonals by kind.
  ModelTransform& t = out.transform;
  const bool rotate = options.kind != TransformKind::kSmoothQuant;
  const bool smooth = options.kind != TransformKind::kQuaRot;
  if (rotate) t.r1 = RandomizedHadamardOrOrthogonal(config.hidden_size, options.seed);
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    if (rotate) t.layers[l].r2 = RandomizedHadamardOrOrthogonal(config.head_dim, options.seed + 1 + l);
    if (smooth) SmoothQuantInit(config, problems[l], t.r1, options.smooth_alpha, t.layers[l]);
  }
  const ModelTransform init = t;

  // Learning (heroq only).
  HeroqLearnHistory history;
  std::vector<double> layer_seconds(config.num_hidden_layers, 0.0);
  const auto learn_start = std::chrono::steady_clock::now();
  if (options.kind == TransformKind::kHeroq && options.learn.iterations > 0) {
    std::vector<const LayerProblem*> ptrs;
    for (const LayerProblem& p : problems) ptrs.push_back(&p);
    LocalTransformShare share(config, ptrs, t.layers, options.learn);
    t.r1 = LearnTransforms(t.r1, {&share}, options.learn, &history);
    t.layers = share.transforms();
    layer_seconds = share.layer_seconds();
  }
  const double learn_seconds = Seconds(learn_start);

  // Report.
  const ModelTransform identity = IdentityModelTransform(config);
  const HeroqObjectiveOptions& obj = options.learn.objective;
  nlohmann::json layers = nlohmann::json::array();
  double loss_identity = 0, loss_init = 0, loss_final = 0;
  static constexpr const char* kGroups[4] = {"qkv", "o", "gate_up", "down"};
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    const LayerProblem& p = problems[l];
    const LayerObjectiveValue a = EvaluateLayerObjective(config, p, identity.r1, identity.layers[l], obj, false);
    const LayerObjectiveValue b = EvaluateLayerObjective(config, p, init.r1, init.layers[l], obj, false);
    const LayerObjectiveValue c = EvaluateLayerObjective(config, p, t.r1, t.layers[l], obj, false);
    loss_identity += a.loss;
    loss_init += b.loss;
    loss_final += c.loss;
    nlohmann::json modules = nlohmann::json::object();
    for (const LinearModule m : kAllLinearModules) {
      const int i = static_cast<int>(m);
      modules[std::string(LinearModuleName(m))] = {
          {"rtn_rel_error_untransformed", a.quant[i]}, {"rtn_rel_error_start", b.quant[i]},
          {"rtn_rel_error_transformed", c.quant[i]}};
    }
    const std::array<MatrixD, 4> ht = TransformedHessians(config, p, t.r1, t.layers[l]);
    nlohmann::json inputs = nlohmann::json::object();
    for (int g = 0; g < 4; ++g) {
      inputs[kGroups[g]] = {{"h", SpectrumJson(SummarizeSpectrum(p.h[g]))},
                            {"h_transformed", SpectrumJson(SummarizeSpectrum(ht[g]))}};
    }
    layers.push_back({{"layer", l}, {"learning_seconds", layer_seconds[l]}, {"modules", modules}, {"inputs", inputs}});
  }
  out.seconds = Seconds(start);
  out.report = {{"kind", std::string(TransformKindName(options.kind))},
                {"seed", options.seed},
                {"smooth_alpha", options.smooth_alpha},
                {"objective", {{"bits", obj.bits}, {"group_size", obj.group_size}, {"sym", obj.sym}, {"lambda", obj.lambda}}},
                {"iterations", options.kind == TransformKind::kHeroq ? options.learn.iterations : 0},
                {"accepted_steps", history.accepted},
                {"rejected_steps", history.rejected},
                {"loss", {{"untransformed", loss_identity}, {"start", loss_init}, {"learned", loss_final}}},
                {"loss_history", history.loss},
                {"seconds", {{"hessians", hessian_seconds}, {"learning", learn_seconds}, {"total", out.seconds}}},
                {"layers", layers}};
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
