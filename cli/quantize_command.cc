// `caliber quantize`: one-shot quantization of a model on this machine — calibration, the
// quantizer of --method on every linear of every decoder layer, and a checkpoint that vLLM
// and transformers load (GPTQ layout for W·A16, compressed-tensors pack-quantized for W·A8
// (--act-bits 8), plus a PEFT adapter for low-rank methods).
// With --transform (or --method heroq_gptq / heroq_gptq_lora) the model is first transformed
// (QuaRot rotations, SmoothQuant diagonals or learned HeRo-Q, docs/methods/heroq.md), written
// to a temporary sibling of --out and quantized from there; report.json gets the transform's
// report, and the baseline perplexity stays the original model's.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/command_line.h"
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/heldout_nll_scorer.h"
#include "cli/progress_bar.h"
#include "core/calib/model_quantizer.h"
#include "core/eval/perplexity.h"
#include "core/formats/checkpoint_format.h"
#include "core/formats/job_meta.h"
#include "core/formats/quant_report.h"
#include "core/io/inputs.h"
#include "core/quant/act_quant.h"
#include "core/quant/quantizer.h"
#include "core/transform/model_transform.h"

ABSL_FLAG(std::string, calib, "", "calibration data (.txt text, .jsonl id lists, .u32/.bin, .i32)");
ABSL_FLAG(std::string, out, "", "output checkpoint directory (must not exist)");
ABSL_FLAG(std::string, method, "gptq",
          "rtn | gptq | gptq_lora | heroq_gptq | heroq_gptq_lora (HeRo-Q, then gptq or gptq_lora)");
ABSL_FLAG(std::string, transform, "none",
          "none | quarot | smoothquant | heroq | fold (RMSNorm folding only): transform the model before quantizing it");
ABSL_FLAG(std::string, heroq_start, "best",
          "heroq: learn from the better (by the objective) of Hadamard + SmoothQuant and "
          "SmoothQuant alone (best), or from Hadamard + SmoothQuant (hadamard)");
ABSL_FLAG(int, heroq_iterations, 100, "heroq: learning steps (0: its start)");
ABSL_FLAG(double, heroq_lambda, 0.05, "heroq: weight of the spectral term lambda_max/trace of H");
ABSL_FLAG(double, heroq_rotation_step, 0.05, "heroq: Frobenius length of a full Cayley step");
ABSL_FLAG(double, heroq_diagonal_step, 0.05, "heroq: largest |step| of a diagonal's log-scales");
ABSL_FLAG(uint64_t, transform_seed, 0, "quarot/heroq: seed of the Hadamard signs and rotations");
ABSL_FLAG(double, smooth_alpha, 0.5, "smoothquant/heroq: SmoothQuant migration strength in [0, 1]");
ABSL_FLAG(std::string, transform_selection, "start",
          "start: the transform's own result | validated: hold out --validation-fraction of the "
          "calibration segments (seeded by --transform-seed) and choose, by the objective on them, among "
          "identity, the kind's fixed transforms and heroq's learning checkpoints");
ABSL_FLAG(double, validation_fraction, 0.125, "validated selection: held-out part of the segments");
ABSL_FLAG(int, validation_windows, 0,
          "validated selection: hold out this many windows of the calibration stream that are not "
          "segments (drawn with --transform-seed; every segment then trains) instead of a fraction of "
          "the segments; 0 = segments; at most 4096");
ABSL_FLAG(std::string, selection_objective, "learner",
          "validated selection compares candidates by: learner (the transform's own round-to-nearest "
          "objective) | gptq (GPTQ's output error with this run's grid, act-order and damping) | nll "
          "(end to end: quantize with each candidate on the training segments, mean token NLL on the "
          "held-out ones; one quantization per candidate)");
ABSL_FLAG(double, selection_margin, 2.0,
          "nll selection: a candidate replaces identity only if its mean per-segment NLL gain over "
          "identity exceeds this many standard errors of that mean; in [0, 10], 0 = plain argmin");
ABSL_FLAG(int, transform_checkpoint_every, 10, "validated heroq: a candidate every this many steps");
ABSL_FLAG(std::string, heroq_freeze, "none",
          "heroq: none | rotations (learn only the diagonals) | diagonals (learn only R1/R2)");
ABSL_FLAG(int, bits, 4, "weight bits: 2, 3, 4 or 8");
ABSL_FLAG(int, group_size, 128, "input columns per scale/zero group; -1 per output channel");
ABSL_FLAG(bool, act_order, false, "GPTQ act-order (columns by decreasing Hessian diagonal)");
ABSL_FLAG(bool, static_groups, false, "group grids fixed from the unquantized weights");
ABSL_FLAG(bool, sym, true, "symmetric grid (the default)");
ABSL_FLAG(bool, asym, false, "asymmetric grid (overrides --sym)");
ABSL_FLAG(bool, mse, false, "search the clipping range by MSE (quant.py's grid search)");
ABSL_FLAG(double, damp, 0.01, "GPTQ damping, as a fraction of mean(diag H)");
ABSL_FLAG(int, lora_rank, 32, "rank r of the low-rank part (gptq_lora, heroq_gptq_lora)");
ABSL_FLAG(int, lora_a_bits, 0, "quantize A to this many bits before fitting B (0: float A)");
ABSL_FLAG(int, refine_iters, 0, "Bid-Up / OLrC refinement loops after gptq_lora");
ABSL_FLAG(int, nsamples, 128, "calibration segments");
ABSL_FLAG(uint64_t, seed, 0, "seed of the calibration segment draw");
ABSL_FLAG(std::string, calib_sampling, "random", "random | first: which windows become segments");
ABSL_FLAG(std::string, propagation, "quantized", "quantized (GPTQ default) | fp");
ABSL_FLAG(std::string, hessian_precision, "float32", "float32 | float64 Hessian accumulation");
ABSL_FLAG(int, batch_seqs, 8, "calibration sequences per forward pass");
ABSL_FLAG(std::string, eval_tokens, "", "held-out ids: report perplexity before and after");
ABSL_FLAG(std::string, eval_text, "", "held-out text: report perplexity before and after");
ABSL_FLAG(int, eval_windows, 0, "evaluate at most this many windows (0: all)");
ABSL_FLAG(bool, eval_baseline, true, "with --eval-*: also evaluate the unquantized model");

namespace caliber::cli {
namespace {

namespace fs = std::filesystem;

// What the flags ask for: --method as given (it may name a transform too), the quantizer's
// options (o.method: the quantizer alone) and the transform before it.
struct QuantizePlan {
  std::string method;
  CalibrationOptions calibration;
  TransformOptions transform;
};

// The quantizers, and the methods that put HeRo-Q in front of one (PlanMethod).
std::vector<std::string> MethodNames() {
  std::vector<std::string> names = QuantizerNames();
  names.insert(names.end(), {"heroq_gptq", "heroq_gptq_lora"});
  return names;
}

absl::StatusOr<MethodPlan> MethodPlanFromFlags() {
  const std::string method = absl::GetFlag(FLAGS_method);
  const std::vector<std::string> names = MethodNames();
  if (std::find(names.begin(), names.end(), method) == names.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown --method '", method, "' (available: ", absl::StrJoin(names, ", "), ")"));
  }
  const std::string transform = absl::GetFlag(FLAGS_transform);
  if (absl::StatusOr<TransformKind> kind = ParseTransformKind(transform); !kind.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--transform: ", kind.status().message()));
  }
  return PlanMethod(method, transform);
}

// The transform's options; the objective's grid and activation bits are the quantization
// target's.
absl::StatusOr<TransformOptions> TransformFromFlags(TransformKind kind,
                                                    const CalibrationOptions& o) {
  const QuantSpec& spec = o.spec;
  TransformOptions t;
  t.kind = kind;
  t.seed = absl::GetFlag(FLAGS_transform_seed);
  t.smooth_alpha = absl::GetFlag(FLAGS_smooth_alpha);
  t.learn.iterations = absl::GetFlag(FLAGS_heroq_iterations);
  t.learn.rotation_step = absl::GetFlag(FLAGS_heroq_rotation_step);
  t.learn.diagonal_step = absl::GetFlag(FLAGS_heroq_diagonal_step);
  t.learn.objective = {spec.bits, spec.group_size, spec.sym, absl::GetFlag(FLAGS_heroq_lambda),
                       o.act_bits};
  absl::StatusOr<HeroqStart> start = ParseHeroqStart(absl::GetFlag(FLAGS_heroq_start));
  if (!start.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--heroq-start: ", start.status().message()));
  }
  t.start = *start;
  absl::StatusOr<TransformSelection> selection = ParseTransformSelection(absl::GetFlag(FLAGS_transform_selection));
  if (!selection.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--transform-selection: ", selection.status().message()));
  }
  t.selection = *selection;
  t.validation_fraction = absl::GetFlag(FLAGS_validation_fraction);
  t.checkpoint_every = absl::GetFlag(FLAGS_transform_checkpoint_every);
  absl::StatusOr<SelectionObjective> objective = ParseSelectionObjective(absl::GetFlag(FLAGS_selection_objective));
  if (!objective.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--selection-objective: ", objective.status().message()));
  }
  t.selection_objective = *objective;
  t.selection_margin = absl::GetFlag(FLAGS_selection_margin);

  if (!(t.selection_margin >= 0 && t.selection_margin <= 10)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--selection-margin must be in [0, 10], got ", t.selection_margin));
  }
  t.selection_spec = spec;
  if (!(t.validation_fraction > 0 && t.validation_fraction <= 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--validation-fraction must be in (0, 0.5], got ", t.validation_fraction));
  }
  if (t.checkpoint_every < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--transform-checkpoint-every must be >= 1, got ", t.checkpoint_every));
  }
  const std::string freeze = absl::GetFlag(FLAGS_heroq_freeze);
  if (freeze == "rotations") {
    t.learn.learn_r1 = t.learn.learn_r2 = false;
  } else if (freeze == "diagonals") {
    t.learn.learn_diagonals = false;
  } else if (freeze != "none") {
    return absl::InvalidArgumentError(
        absl::StrCat("--heroq-freeze: unknown '", freeze, "' (none, rotations, diagonals)"));
  }
  if (t.learn.iterations < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--heroq-iterations must be >= 0, got ", t.learn.iterations));
  }
  // The rules of the service's ValidateTransformOptions, with the flags' names.
  const std::pair<const char*, double> nonnegative[] = {
      {"--heroq-lambda", t.learn.objective.lambda},
      {"--heroq-rotation-step", t.learn.rotation_step},
      {"--heroq-diagonal-step", t.learn.diagonal_step}};
  for (const auto& [name, v] : nonnegative) {
    if (!(std::isfinite(v) && v >= 0)) {
      return absl::InvalidArgumentError(absl::StrCat(name, " must be finite and >= 0, got ", v));
    }
  }
  if (!(t.smooth_alpha >= 0 && t.smooth_alpha <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--smooth-alpha must be in [0, 1], got ", t.smooth_alpha));
  }
  return t;
}

absl::StatusOr<QuantizePlan> PlanFromFlags() {
  absl::StatusOr<MethodPlan> method = MethodPlanFromFlags();
  if (!method.ok()) return method.status();
  QuantizePlan plan;
  plan.method = absl::GetFlag(FLAGS_method);
  CalibrationOptions& o = plan.calibration;
  o.method = method->quantizer;
  QuantSpec& s = o.spec;
  s.bits = absl::GetFlag(FLAGS_bits);
  s.group_size = absl::GetFlag(FLAGS_group_size);
  s.act_order = absl::GetFlag(FLAGS_act_order);
  s.static_groups = absl::GetFlag(FLAGS_static_groups);
  s.sym = absl::GetFlag(FLAGS_sym) && !absl::GetFlag(FLAGS_asym);
  s.mse = absl::GetFlag(FLAGS_mse);
  s.damp = absl::GetFlag(FLAGS_damp);
  // The planned quantizer's: heroq_gptq_lora has a low-rank part too.
  s.lora_rank = o.method == "gptq_lora" ? absl::GetFlag(FLAGS_lora_rank) : 0;
  s.lora_a_bits = absl::GetFlag(FLAGS_lora_a_bits);
  s.refine_iters = absl::GetFlag(FLAGS_refine_iters);
  absl::StatusOr<Propagation> p = ParsePropagation(absl::GetFlag(FLAGS_propagation));
  if (!p.ok()) return p.status();
  o.propagation = *p;
  const std::string precision = absl::GetFlag(FLAGS_hessian_precision);
  if (precision == "float64") {
    o.hessian_precision = HessianAccumulator::Precision::kFloat64;
  } else if (precision != "float32") {
    return absl::InvalidArgumentError(
        absl::StrCat("--hessian-precision must be float32 or float64, got '", precision, "'"));
  }
  o.batch_seqs = absl::GetFlag(FLAGS_batch_seqs);
  o.act_bits = absl::GetFlag(FLAGS_act_bits) == 0 ? kActBitsFloat : absl::GetFlag(FLAGS_act_bits);
  if (absl::Status bad = ValidateActBits(o.act_bits); !bad.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--act-bits: ", std::string(bad.message())));
  }
  absl::StatusOr<TransformOptions> transform = TransformFromFlags(method->transform, o);
  if (!transform.ok()) return transform.status();
  plan.transform = *transform;
  return plan;
}

// How the checkpoint was made (config.json's quantization_config.meta.caliber).
nlohmann::json MetaJson(const QuantizePlan& plan, const CalibrationSet& calib) {
  return QuantizationMeta(plan.calibration,
                          {calib.nsamples, calib.seq_len, absl::GetFlag(FLAGS_seed),
                           absl::GetFlag(FLAGS_calib_sampling)},
                          plan.method, plan.transform);
}

// The job as report.json records it: how the checkpoint was made plus where its inputs were.
nlohmann::json JobJson(const QuantizePlan& plan, const CalibrationSet& calib) {
  nlohmann::json job = MetaJson(plan, calib);
  job["model"] = absl::GetFlag(FLAGS_model);
  job["calib"]["file"] = absl::GetFlag(FLAGS_calib);
  return job;
}

// Perplexity of the model at `dir` (+ adapter) with activations at `act_bits` on the --eval-*
// data, or nullopt if none given.
absl::StatusOr<std::optional<PerplexityResult>> MaybeEvaluate(const std::string& dir,
                                                              const std::string& adapter,
                                                              int act_bits,
                                                              const std::string& label) {
  const std::string text = absl::GetFlag(FLAGS_eval_text);
  const std::string tokens = absl::GetFlag(FLAGS_eval_tokens);
  if (text.empty() && tokens.empty()) return std::optional<PerplexityResult>();
  absl::StatusOr<std::unique_ptr<Model>> model = LoadModel(dir, adapter);
  if (!model.ok()) return model.status();
  absl::StatusOr<std::vector<int32_t>> stream =
      LoadTokens(text.empty() ? tokens : text, "auto", !text.empty(), absl::GetFlag(FLAGS_model),
                 (*model)->config().vocab_size);
  if (!stream.ok()) return stream.status();
  ProgressBar bar(label);
  PerplexityOptions options;
  options.seq_len = absl::GetFlag(FLAGS_seq_len);
  options.max_windows = absl::GetFlag(FLAGS_eval_windows);
  options.act_bits = act_bits;
  options.progress = [&bar](int done, int total) { bar.Update(done, total); };
  absl::StatusOr<PerplexityResult> r = EvaluatePerplexity(**model, *stream, options);
  if (!r.ok()) return r.status();
  return std::optional<PerplexityResult>(*r);
}

// seq_len and act_bits are recorded so `caliber eval --seq-len N --max-windows W --act-bits B`
// can reproduce the number.
nlohmann::json PplJson(const PerplexityResult& r, int act_bits) {
  return {{"ppl", r.ppl},
          {"nll", r.nll},
          {"tokens", r.tokens},
          {"windows", r.windows},
          {"seq_len", absl::GetFlag(FLAGS_seq_len)},
          {"act_bits", act_bits}};
}

// The transformed model's directory, a sibling of --out. One that exists is refused (an
// interrupted run's: look at it or remove it); the one this run creates goes away on every
// exit path.
class TransformDir {
 public:
  explicit TransformDir(const std::string& out_dir)
      : path_(absl::StrCat(TrimSlashes(out_dir), ".transformed-partial")) {}
  TransformDir(const TransformDir&) = delete;
  TransformDir& operator=(const TransformDir&) = delete;
  ~TransformDir() {
    std::error_code ec;
    if (created_) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

  absl::Status CheckAbsent() const {
    std::error_code ec;
    if (!fs::exists(path_, ec)) return absl::OkStatus();
    return absl::AlreadyExistsError(absl::StrCat(
        "transform directory ", path_, " already exists (left by an interrupted run?); remove it"));
  }
  // Claims the directory: create_directory fails if another run got there first.
  absl::Status Create() {
    std::error_code ec;
    if (!fs::create_directory(path_, ec)) {
      return ec ? absl::InternalError(absl::StrCat("cannot create ", path_, ": ", ec.message()))
                : CheckAbsent();
    }
    created_ = true;
    return absl::OkStatus();
  }

 private:
  static std::string TrimSlashes(std::string dir) {
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    return dir;
  }
  std::string path_;
  bool created_ = false;
};

// The model the quantizer reads and the checkpoint writer copies from.
struct ModelSource {
  std::string dir;
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
};

// Builds the plan's transform of `source` on the calibration set and writes the transformed
// model into `dir` (created here); returns the transform's report and the reopened model.
absl::StatusOr<nlohmann::json> TransformModel(const QuantizePlan& plan, const ModelSource& source,
                                              const CalibrationSet& calib, const CalibrationSet* validation_windows,
                                              TransformDir& dir, ModelSource& transformed) {
  absl::StatusOr<TransformOutcome> outcome;
  {
    ProgressBar bar(
        absl::StrCat("transform ", std::string(TransformKindName(plan.transform.kind))));
    bar.Update(0, 1);
    HeldoutNllScorer score;
    if (plan.transform.selection == TransformSelection::kValidated &&
        plan.transform.selection_objective == SelectionObjective::kNll) {
      score = MakeHeldoutNllScorer(plan.calibration, source.dir, source.config, *source.checkpoint,
                                   absl::StrCat(dir.path(), "-nll"));
    }
    outcome = BuildModelTransform(source.config, *source.checkpoint, calib, plan.transform,
                                  plan.calibration.batch_seqs, score, validation_windows);
    if (!outcome.ok()) return outcome.status();
    bar.Update(1, 1);
  }
  if (absl::Status s = dir.Create(); !s.ok()) return s;
  if (absl::Status s = WriteTransformedModel(source.dir, source.config, *source.checkpoint,
                                             outcome->transform, dir.path());
      !s.ok()) {
    return s;
  }
  absl::StatusOr<ModelConfig> config =
      ModelConfig::FromFile((fs::path(dir.path()) / "config.json").string());
  if (!config.ok()) return config.status();
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir.path());
  if (!checkpoint.ok()) return checkpoint.status();
  transformed = {dir.path(), *std::move(config), *std::move(checkpoint)};
  return std::move(outcome->report);
}

// The adapter names the model as the user gave it, not the temporary transformed copy.
std::string ModelName(const std::string& dir) {
  fs::path p = fs::absolute(dir).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();  // "dir/"
  return p.filename().string();
}

void PrintTransformSummary(const nlohmann::json& t) {
  const auto& loss = t["loss"];
  std::printf(
      "transform %s: loss %.6f untransformed -> %.6f start -> %.6f learned (%d steps kept, %d "
      "undone), "
      "learning %.2fs, total %.2fs\n",
      t["kind"].get<std::string>().c_str(), loss["untransformed"].get<double>(),
      loss["start"].get<double>(), loss["learned"].get<double>(), t["accepted_steps"].get<int>(),
      t["rejected_steps"].get<int>(), t["seconds"]["learning"].get<double>(),
      t["seconds"]["total"].get<double>());
  if (t.contains("selection")) {
    for (const auto& c : t["selection"]["candidates"]) {
      std::printf("  candidate %-22s objective train %.6f validation %.6f", c["name"].get<std::string>().c_str(),
                  c["train"].get<double>(), c["validation"].get<double>());
      if (c.contains("heldout_nll")) {
        std::printf("  held-out nll %.6f (%+.6f ± %.6f vs identity, %.1fs)", c["heldout_nll"].get<double>(),
                    c["vs_identity"]["mean"].get<double>(), c["vs_identity"]["standard_error"].get<double>(),
                    c["nll_seconds"].get<double>());
      }
      std::printf("\n");
    }
    const bool nll = t["selection"].value("objective", "") == "nll";
    if (nll) {
      std::printf("transform selection: %s (lowest held-out nll of the quantized model among the candidates "
                  "whose gain over identity exceeds %g standard errors; identity if none)\n",
                  t["selection"]["chosen"].get<std::string>().c_str(), t["selection"]["margin"].get<double>());
    } else {
      std::printf("transform selection: %s (lowest validation objective)\n",
                  t["selection"]["chosen"].get<std::string>().c_str());
    }
  }
}

void PrintReport(const nlohmann::json& report, int act_bits, const std::string& out_dir) {
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", report["totals"].dump().c_str());
    return;
  }
  std::printf("%-6s %-18s %12s %12s %8s\n", "layer", "module", "rel.error", "top eig H", "seconds");
  for (const auto& m : report["modules"]) {
    std::printf("%-6d %-18s %12.6f %12.4g %8.3f\n", m["layer"].get<int>(),
                m["module"].get<std::string>().c_str(), m["relative_output_error"].get<double>(),
                m["hessian_top_eigenvalue"].get<double>(), m["seconds"].get<double>());
  }
  const auto& t = report["totals"];
  std::printf("%d modules, mean relative output error %.6f, %.2fs\n", t["modules"].get<int>(),
              t["mean_relative_output_error"].get<double>(), t["seconds"].get<double>());
  if (report.contains("transform")) PrintTransformSummary(report["transform"]);
  if (report.contains("eval")) {
    const auto& e = report["eval"];
    if (e.contains("fp")) std::printf("perplexity fp        %.4f\n", e["fp"]["ppl"].get<double>());
    std::printf("perplexity quantized %.4f (%d windows, activations %s)\n",
                e["quantized"]["ppl"].get<double>(), e["quantized"]["windows"].get<int>(),
                act_bits == kActBitsFloat ? "float" : "INT8 per token");
  }
  std::printf("wrote %s\n", out_dir.c_str());
}

absl::Status Quantize() {
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  const std::string out_dir = absl::GetFlag(FLAGS_out);
  if (model_dir.empty()) return absl::InvalidArgumentError("--model is required");
  if (out_dir.empty()) return absl::InvalidArgumentError("--out is required");
  if (absl::GetFlag(FLAGS_calib).empty()) return absl::InvalidArgumentError("--calib is required");
  absl::StatusOr<QuantizePlan> plan = PlanFromFlags();
  if (!plan.ok()) return plan.status();
  const CalibrationOptions& options = plan->calibration;
  const bool transformed = plan->transform.kind != TransformKind::kNone;

  absl::StatusOr<ModelConfig> config =
      ModelConfig::FromFile((fs::path(model_dir) / "config.json").string());
  if (!config.ok()) return config.status();
  if (config->quantized()) return absl::InvalidArgumentError(model_dir + " is already quantized");
  for (const int in : {config->hidden_size, config->q_dim(), config->intermediate_size}) {
    if (absl::Status s = Validate(options.spec, in); !s.ok()) return s;
  }
  if (absl::Status s = CheckCheckpointFormat(options, *config); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(model_dir);
  if (!checkpoint.ok()) return checkpoint.status();
  const ModelSource original{model_dir, *std::move(config), *std::move(checkpoint)};

  absl::StatusOr<std::vector<int32_t>> stream =
      LoadTokens(absl::GetFlag(FLAGS_calib), absl::GetFlag(FLAGS_format), false, model_dir,
                 original.config.vocab_size);
  if (!stream.ok()) return stream.status();
  absl::StatusOr<CalibSampling> sampling = ParseCalibSampling(absl::GetFlag(FLAGS_calib_sampling));
  if (!sampling.ok()) return sampling.status();
  absl::StatusOr<CalibrationSet> calib =
      SelectCalibrationSegments(*stream, absl::GetFlag(FLAGS_nsamples), absl::GetFlag(FLAGS_seq_len),
                                absl::GetFlag(FLAGS_seed), *sampling);
  if (!calib.ok()) return calib.status();
  // --validation-windows: the validated selection's held-out data are windows of the stream
  // that are not segments, drawn with the transform seed (salted as the segment hold-out is).
  std::optional<CalibrationSet> validation_windows;
  if (const int n = absl::GetFlag(FLAGS_validation_windows); n != 0) {
    if (n < 0 || n > kMaxValidationWindows) {
      return absl::InvalidArgumentError(
          absl::StrCat("--validation-windows must be in [0, ", kMaxValidationWindows, "], got ", n));
    }
    if (plan->transform.kind == TransformKind::kNone || plan->transform.selection != TransformSelection::kValidated) {
      return absl::InvalidArgumentError("--validation-windows needs a transform and --transform-selection validated");
    }
    absl::StatusOr<CalibrationSet> spare =
        SelectSpareWindows(*stream, *calib, n, plan->transform.seed ^ kValidationSalt);
    if (!spare.ok()) return absl::InvalidArgumentError(absl::StrCat("--validation-windows: ", spare.status().message()));
    validation_windows = *std::move(spare);
  }

  const nlohmann::json job = JobJson(*plan, *calib);
  const nlohmann::json meta = MetaJson(*plan, *calib);
  const auto make_writer = [&](const ModelSource& source) {
    return MakeCheckpointWriter(options, source.config, *source.checkpoint, source.dir, out_dir,
                                {{"quantizer", {"caliber:0.1.0"}}, {"caliber", meta}});
  };
  // Declared before the writer, which keeps references into it.
  TransformDir transform_dir(out_dir);
  ModelSource transformed_source;
  std::unique_ptr<QuantizedCheckpointWriter> writer = make_writer(original);
  if (absl::Status s = writer->CheckOutput(); !s.ok()) return s;
  if (transformed) {
    if (absl::Status s = transform_dir.CheckAbsent(); !s.ok()) return s;
  }

  // The baseline is the unquantized model as it is (float activations, never transformed).
  absl::StatusOr<std::optional<PerplexityResult>> before = std::optional<PerplexityResult>();
  if (absl::GetFlag(FLAGS_eval_baseline)) before = MaybeEvaluate(model_dir, "", kActBitsFloat, "eval fp");
  if (!before.ok()) return before.status();

  // With a transform the quantizer reads, and the writer copies from, the transformed model.
  nlohmann::json transform_report;
  if (transformed) {
    absl::StatusOr<nlohmann::json> r =
        TransformModel(*plan, original, *calib, validation_windows ? &*validation_windows : nullptr, transform_dir,
                       transformed_source);
    if (!r.ok()) return r.status();
    transform_report = *std::move(r);
    writer = make_writer(transformed_source);
    writer->set_base_model_name(ModelName(model_dir));
  }
  const ModelSource& source = transformed ? transformed_source : original;

  ProgressBar bar(absl::StrCat("quantize ", plan->method));
  bar.Update(0, source.config.num_hidden_layers);
  absl::StatusOr<ModelQuantResult> result = QuantizeModel(
      source.config, *source.checkpoint, *calib, options, [&](const LayerQuantResult& layer) {
        bar.Update(layer.layer + 1, source.config.num_hidden_layers);
        return writer->AddLayer(layer);
      });
  if (!result.ok()) return result.status();
  absl::StatusOr<std::string> staged = writer->Stage();
  if (!staged.ok()) return staged.status();

  nlohmann::json report = BuildQuantReport(*result, job);
  if (transformed) report["transform"] = std::move(transform_report);
  const std::string adapter = (fs::path(*staged) / "adapter").string();
  absl::StatusOr<std::optional<PerplexityResult>> after = MaybeEvaluate(
      *staged, fs::exists(adapter) ? adapter : "", options.act_bits, "eval quantized");
  if (!after.ok()) {
    std::error_code ec;
    fs::remove_all(*staged, ec);  // a failed run leaves nothing behind
    return after.status();
  }
  if (after->has_value()) {
    report["eval"] = {{"quantized", PplJson(**after, options.act_bits)}};
    if (before->has_value()) report["eval"]["fp"] = PplJson(**before, kActBitsFloat);
  }
  if (absl::Status s = writer->Commit(report); !s.ok()) return s;
  PrintReport(report, options.act_bits, out_dir);
  return absl::OkStatus();
}

}  // namespace

int RunQuantize(int argc, char** argv) {
  static const CommandSpec spec{
      "quantize",
      "caliber quantize --model DIR --calib FILE --out DIR "
      "[--method rtn|gptq|gptq_lora|heroq_gptq|heroq_gptq_lora] [--bits 4] [--group-size 128] "
      "[--transform none|quarot|smoothquant|heroq] [--eval-tokens FILE] ...",
      {"model", "calib", "out", "format", "method", "bits", "group_size", "act_order", "static_groups", "sym",
       "asym", "mse", "damp", "lora_rank", "lora_a_bits", "refine_iters", "act_bits", "nsamples", "seq_len",
       "seed", "calib_sampling", "propagation", "hessian_precision", "batch_seqs", "transform", "heroq_start",
       "heroq_iterations", "heroq_lambda", "heroq_rotation_step", "heroq_diagonal_step", "transform_seed",
       "transform_selection", "validation_fraction", "transform_checkpoint_every", "selection_objective",
       "selection_margin", "validation_windows",
       "heroq_freeze",
       "smooth_alpha", "eval_tokens", "eval_text", "eval_windows", "eval_baseline", "json"},
      "Exit codes: 0 ok, 1 the quantization failed or was refused, 2 usage error."};
  const ParsedCommand parsed = ParseCommand(argc, argv, spec, /*env_overrides=*/false);
  if (parsed.exit_code) return *parsed.exit_code;
  if (!parsed.args.empty()) return UsageError(spec, "unexpected argument '" + parsed.args[0] + "'");
  if (absl::Status s = Quantize(); !s.ok()) {
    std::fprintf(stderr, "caliber quantize: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace caliber::cli
