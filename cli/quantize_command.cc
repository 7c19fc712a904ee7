// `caliber quantize`: one-shot quantization of a model on this machine — calibration, the
// quantizer of --method on every linear of every decoder layer, and a checkpoint that vLLM
// and transformers load (GPTQ layout for W·A16, compressed-tensors pack-quantized for W·A8
// (--act-bits 8), plus a PEFT adapter for low-rank methods).
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/io/inputs.h"
#include "cli/progress_bar.h"
#include "core/calib/model_quantizer.h"
#include "core/eval/perplexity.h"
#include "core/formats/checkpoint_format.h"
#include "core/formats/job_meta.h"
#include "core/formats/quant_report.h"
#include "core/quant/act_quant.h"
#include "core/quant/quantizer.h"

ABSL_FLAG(std::string, calib, "", "calibration data (.txt text, .jsonl id lists, .u32/.bin, .i32)");
ABSL_FLAG(std::string, out, "", "output checkpoint directory (must not exist)");
ABSL_FLAG(std::string, method, "gptq", "rtn | gptq | gptq_lora");
ABSL_FLAG(int, bits, 4, "weight bits: 2, 3, 4 or 8");
ABSL_FLAG(int, group_size, 128, "input columns per scale/zero group; -1 per output channel");
ABSL_FLAG(bool, act_order, false, "GPTQ act-order (columns by decreasing Hessian diagonal)");
ABSL_FLAG(bool, static_groups, false, "group grids fixed from the unquantized weights");
ABSL_FLAG(bool, sym, true, "symmetric grid (the default)");
ABSL_FLAG(bool, asym, false, "asymmetric grid (overrides --sym)");
ABSL_FLAG(bool, mse, false, "search the clipping range by MSE (quant.py's grid search)");
ABSL_FLAG(double, damp, 0.01, "GPTQ damping, as a fraction of mean(diag H)");
ABSL_FLAG(int, lora_rank, 32, "rank r of the low-rank part (gptq_lora)");
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

absl::StatusOr<CalibrationOptions> OptionsFromFlags() {
  CalibrationOptions o;
  o.method = absl::GetFlag(FLAGS_method);
  if (FindQuantizer(o.method) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown --method '", o.method, "' (available: ",
                                                   absl::StrJoin(QuantizerNames(), ", "), ")"));
  }
  QuantSpec& s = o.spec;
  s.bits = absl::GetFlag(FLAGS_bits);
  s.group_size = absl::GetFlag(FLAGS_group_size);
  s.act_order = absl::GetFlag(FLAGS_act_order);
  s.static_groups = absl::GetFlag(FLAGS_static_groups);
  s.sym = absl::GetFlag(FLAGS_sym) && !absl::GetFlag(FLAGS_asym);
  s.mse = absl::GetFlag(FLAGS_mse);
  s.damp = absl::GetFlag(FLAGS_damp);
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
  return o;
}

// The job as report.json records it: how the checkpoint was made plus where its inputs were.
nlohmann::json JobJson(const CalibrationOptions& o, const CalibrationSet& calib) {
  nlohmann::json job = QuantizationMeta(
      o, {calib.nsamples, calib.seq_len, absl::GetFlag(FLAGS_seed), absl::GetFlag(FLAGS_calib_sampling)});
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

absl::Status Quantize() {
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  const std::string out_dir = absl::GetFlag(FLAGS_out);
  if (model_dir.empty()) return absl::InvalidArgumentError("--model is required");
  if (out_dir.empty()) return absl::InvalidArgumentError("--out is required");
  if (absl::GetFlag(FLAGS_calib).empty()) return absl::InvalidArgumentError("--calib is required");
  absl::StatusOr<CalibrationOptions> options = OptionsFromFlags();
  if (!options.ok()) return options.status();

  absl::StatusOr<ModelConfig> config =
      ModelConfig::FromFile((std::filesystem::path(model_dir) / "config.json").string());
  if (!config.ok()) return config.status();
  if (config->quantized()) return absl::InvalidArgumentError(model_dir + " is already quantized");
  for (const int in : {config->hidden_size, config->q_dim(), config->intermediate_size}) {
    if (absl::Status s = Validate(options->spec, in); !s.ok()) return s;
  }
  if (absl::Status s = CheckCheckpointFormat(*options, *config); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(model_dir);
  if (!checkpoint.ok()) return checkpoint.status();

  absl::StatusOr<std::vector<int32_t>> stream = LoadTokens(
      absl::GetFlag(FLAGS_calib), absl::GetFlag(FLAGS_format), false, model_dir, config->vocab_size);
  if (!stream.ok()) return stream.status();
  absl::StatusOr<CalibSampling> sampling = ParseCalibSampling(absl::GetFlag(FLAGS_calib_sampling));
  if (!sampling.ok()) return sampling.status();
  absl::StatusOr<CalibrationSet> calib =
      SelectCalibrationSegments(*stream, absl::GetFlag(FLAGS_nsamples), absl::GetFlag(FLAGS_seq_len),
                                absl::GetFlag(FLAGS_seed), *sampling);
  if (!calib.ok()) return calib.status();

  const nlohmann::json job = JobJson(*options, *calib);
  const nlohmann::json meta = QuantizationMeta(
      *options, {calib->nsamples, calib->seq_len, absl::GetFlag(FLAGS_seed), absl::GetFlag(FLAGS_calib_sampling)});
  const std::unique_ptr<QuantizedCheckpointWriter> writer = MakeCheckpointWriter(
      *options, *config, **checkpoint, model_dir, out_dir,
      {{"quantizer", {"caliber:0.1.0"}}, {"caliber", meta}});
  if (absl::Status s = writer->CheckOutput(); !s.ok()) return s;

  // The baseline is the unquantized model as it is (float activations).
  absl::StatusOr<std::optional<PerplexityResult>> before = std::optional<PerplexityResult>();
  if (absl::GetFlag(FLAGS_eval_baseline)) before = MaybeEvaluate(model_dir, "", kActBitsFloat, "eval fp");
  if (!before.ok()) return before.status();

  ProgressBar bar(absl::StrCat("quantize ", options->method));
  bar.Update(0, config->num_hidden_layers);
  absl::StatusOr<ModelQuantResult> result = QuantizeModel(
      *config, **checkpoint, *calib, *options, [&](const LayerQuantResult& layer) {
        bar.Update(layer.layer + 1, config->num_hidden_layers);
        return writer->AddLayer(layer);
      });
  if (!result.ok()) return result.status();
  absl::StatusOr<std::string> staged = writer->Stage();
  if (!staged.ok()) return staged.status();

  nlohmann::json report = BuildQuantReport(*result, job);
  const std::string adapter = (std::filesystem::path(*staged) / "adapter").string();
  absl::StatusOr<std::optional<PerplexityResult>> after = MaybeEvaluate(
      *staged, std::filesystem::exists(adapter) ? adapter : "", options->act_bits, "eval quantized");
  if (!after.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(*staged, ec);  // a failed run leaves nothing behind
    return after.status();
  }
  if (after->has_value()) {
    report["eval"] = {{"quantized", PplJson(**after, options->act_bits)}};
    if (before->has_value()) report["eval"]["fp"] = PplJson(**before, kActBitsFloat);
  }
  if (absl::Status s = writer->Commit(report); !s.ok()) return s;

  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", report["totals"].dump().c_str());
  } else {
    std::printf("%-6s %-18s %12s %12s %8s\n", "layer", "module", "rel.error", "top eig H", "seconds");
    for (const auto& m : report["modules"]) {
      std::printf("%-6d %-18s %12.6f %12.4g %8.3f\n", m["layer"].get<int>(),
                  m["module"].get<std::string>().c_str(), m["relative_output_error"].get<double>(),
                  m["hessian_top_eigenvalue"].get<double>(), m["seconds"].get<double>());
    }
    const auto& t = report["totals"];
    std::printf("%d modules, mean relative output error %.6f, %.2fs\n", t["modules"].get<int>(),
                t["mean_relative_output_error"].get<double>(), t["seconds"].get<double>());
    if (report.contains("eval")) {
      const auto& e = report["eval"];
      if (e.contains("fp")) std::printf("perplexity fp        %.4f\n", e["fp"]["ppl"].get<double>());
      std::printf("perplexity quantized %.4f (%d windows, activations %s)\n",
                  e["quantized"]["ppl"].get<double>(), e["quantized"]["windows"].get<int>(),
                  options->act_bits == kActBitsFloat ? "float" : "INT8 per token");
    }
    std::printf("wrote %s\n", out_dir.c_str());
  }
  return absl::OkStatus();
}

}  // namespace

int RunQuantize(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "caliber quantize --model DIR --calib FILE --out DIR [--method rtn|gptq|gptq_lora] "
      "[--bits 4] [--group-size 128] [--act-order] [--sym|--asym] [--damp 0.01] "
      "[--lora-rank 32] [--refine-iters K] [--act-bits 16|8] [--nsamples 128] [--seq-len 256] "
      "[--seed 0]");
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = Quantize(); !s.ok()) {
    std::fprintf(stderr, "caliber quantize: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace caliber::cli
