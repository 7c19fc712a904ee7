// HeRo-Q and its baselines end to end on one model: for each transform (none = the model as
// it is, plain GPTQ; fold = RMSNorm weights folded into the linears and nothing else, which
// every transform starts with; quarot, smoothquant, heroq) build it from the calibration set,
// fold it into the model,
// quantize with --method through the sequential pipeline, and measure held-out perplexity.
// Prints per transform the transform's time (Hessian pass + learning) relative to the GPTQ
// time of the same job, the objective before/after learning, the per-layer learning time
// relative to the layer's GPTQ time, and the perplexity; the first row (none) is the baseline
// the others are compared with. "heroq_hadamard" is heroq forced to learn from the Hadamard
// start (the default picks the better of that and the SmoothQuant-only start).
//
//   build/bench/heroq_bench --model testdata/tinyllama-en-outliers --bits 3 --group-size 128
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "core/calib/model_quantizer.h"
#include "core/eval/perplexity.h"
#include "core/model/model.h"
#include "core/model/weights.h"
#include "core/text/token_source.h"
#include "core/transform/model_transform.h"

ABSL_FLAG(std::string, model, "testdata/tinyllama-en-outliers", "model directory");
ABSL_FLAG(int, nsamples, 128, "calibration segments (calib/calib_tokens.i32)");
ABSL_FLAG(int, seq_len, 256, "calibration and evaluation window");
ABSL_FLAG(int, windows, 400, "held-out windows (heldout/heldout_tokens.i32)");
ABSL_FLAG(int, bits, 3, "weight bits");
ABSL_FLAG(int, group_size, 128, "weight group size");
ABSL_FLAG(int, act_bits, 16, "16, or 8 for W·A8");
ABSL_FLAG(std::string, method, "gptq", "gptq | gptq_lora");
ABSL_FLAG(int, lora_rank, 32, "gptq_lora rank");
ABSL_FLAG(std::string, transforms, "none,fold,quarot,smoothquant,heroq", "transforms to compare");
ABSL_FLAG(int, iterations, 100, "HeRo-Q learning steps");
ABSL_FLAG(double, lambda, 0.05, "HeRo-Q spectral weight λ");
ABSL_FLAG(double, rotation_step, 0.05, "HeRo-Q Cayley step length");
ABSL_FLAG(double, diagonal_step, 0.05, "HeRo-Q largest θ step");
ABSL_FLAG(uint64_t, seed, 0, "transform seed");

namespace caliber {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

#define CHECK_OK(expr)                                                   \
  do {                                                                   \
    const absl::Status _s = (expr);                                      \
    if (!_s.ok()) {                                                      \
      std::fprintf(stderr, "%s\n", std::string(_s.message()).c_str()); \
      std::exit(1);                                                      \
    }                                                                    \
  } while (0)

template <typename T>
T Take(absl::StatusOr<T> v) {
  CHECK_OK(v.status());
  return *std::move(v);
}

int Main() {
  const std::string dir = absl::GetFlag(FLAGS_model);
  const ModelConfig config = Take(ModelConfig::FromFile(dir + "/config.json"));
  const std::unique_ptr<Checkpoint> source = Take(Checkpoint::Open(dir));
  const std::vector<int32_t> calib_stream =
      Take(LoadTokenStream(dir + "/calib/calib_tokens.i32", TokenFormat::kI32, nullptr, config.vocab_size));
  const std::vector<int32_t> heldout =
      Take(LoadTokenStream(dir + "/heldout/heldout_tokens.i32", TokenFormat::kI32, nullptr, config.vocab_size));
  const CalibrationSet calib = Take(SelectCalibrationSegments(calib_stream, absl::GetFlag(FLAGS_nsamples),
                                                              absl::GetFlag(FLAGS_seq_len), 0,
                                                              CalibSampling::kFirst));
  CalibrationOptions q;
  q.method = absl::GetFlag(FLAGS_method);
  q.spec.bits = absl::GetFlag(FLAGS_bits);
  q.spec.group_size = absl::GetFlag(FLAGS_group_size);
  q.spec.lora_rank = q.method == "gptq_lora" ? absl::GetFlag(FLAGS_lora_rank) : 0;
  q.act_bits = absl::GetFlag(FLAGS_act_bits);
  PerplexityOptions eval;
  eval.seq_len = absl::GetFlag(FLAGS_seq_len);
  eval.max_windows = absl::GetFlag(FLAGS_windows);
  eval.act_bits = q.act_bits;

  std::printf("model %s, %s W%dA%d g%d, %d x %d calibration tokens, %d held-out windows\n", dir.c_str(),
              q.method.c_str(), q.spec.bits, q.act_bits, q.spec.group_size, calib.nsamples, calib.seq_len,
              eval.max_windows);
  std::printf("| transform | transform s | GPTQ s | transform/GPTQ | learn s per layer / GPTQ s per layer | objective start -> learned | ppl |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const std::string& name : std::vector<std::string>(absl::StrSplit(absl::GetFlag(FLAGS_transforms), ','))) {
    // "fold" is the identity transform written out: only the RMSNorm folding.
    const bool fold_only = name == "fold";
    // "heroq_hadamard": heroq learning from the Hadamard start, not the better start.
    const bool hadamard_start = name == "heroq_hadamard";
    TransformOptions t;
    t.kind = fold_only ? TransformKind::kNone : Take(ParseTransformKind(hadamard_start ? "heroq" : name));
    if (hadamard_start) t.start = HeroqStart::kHadamard;
    t.seed = absl::GetFlag(FLAGS_seed);
    t.learn.iterations = absl::GetFlag(FLAGS_iterations);
    t.learn.rotation_step = absl::GetFlag(FLAGS_rotation_step);
    t.learn.diagonal_step = absl::GetFlag(FLAGS_diagonal_step);
    t.learn.objective = {q.spec.bits, q.spec.group_size, q.spec.sym, absl::GetFlag(FLAGS_lambda), q.act_bits};
    const TransformOutcome outcome = Take(BuildModelTransform(config, *source, calib, t, q.batch_seqs));
    const bool transformed = t.kind != TransformKind::kNone;
    std::string model_dir = dir;
    const std::string tdir = std::filesystem::temp_directory_path().string() + "/heroq-bench-" + name;
    if (transformed || fold_only) {
      std::filesystem::remove_all(tdir);
      CHECK_OK(WriteTransformedModel(dir, config, *source, outcome.transform, tdir));
      model_dir = tdir;
    }
    const std::unique_ptr<Checkpoint> ck = Take(Checkpoint::Open(model_dir));
    const ModelConfig tconfig = Take(ModelConfig::FromFile(model_dir + "/config.json"));
    const auto start = std::chrono::steady_clock::now();
    const ModelQuantResult result = Take(QuantizeModel(tconfig, *ck, calib, q));
    const double gptq_seconds = Seconds(start);
    ModelWeights w = Take(LoadModelWeights(tconfig, *ck));
    for (const LayerQuantResult& layer : result.layers) CHECK_OK(ApplyLayerResult(layer, w.layers[layer.layer]));
    const Model model(tconfig, std::move(w));
    const PerplexityResult ppl = Take(EvaluatePerplexity(model, heldout, eval));
    std::string per_layer;
    for (size_t l = 0; l < result.layers.size(); ++l) {
      const double learn = transformed ? outcome.report["layers"][l]["learning_seconds"].get<double>() : 0.0;
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%s%.2f/%.2f", l ? " " : "", learn, result.layers[l].seconds);
      per_layer += buf;
    }
    std::printf("| %s | %.2f | %.2f | %.2f | %s | %.5f -> %.5f | %.3f |\n", name.c_str(), outcome.seconds, gptq_seconds,
                outcome.seconds / gptq_seconds, per_layer.c_str(),
                transformed ? outcome.report["loss"]["start"].get<double>() : 0.0,
                transformed ? outcome.report["loss"]["learned"].get<double>() : 0.0, ppl.ppl);
    std::fflush(stdout);
    if (model_dir == tdir) std::filesystem::remove_all(tdir);
  }
  return 0;
}

}  // namespace
}  // namespace caliber

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return caliber::Main();
}
