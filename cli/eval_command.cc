// `caliber eval`: perplexity of a model (plain or quantized, optionally with a LoRA adapter)
// on text or pre-tokenized ids, with float activations or W·A8's per-token INT8 ones
// (--act-bits; by default what the checkpoint is served with).
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/command_line.h"
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/io/inputs.h"
#include "cli/progress_bar.h"
#include "core/eval/perplexity.h"
#include "core/quant/act_quant.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, text, "", "evaluation text file (tokenized with the model's tokenizer)");
ABSL_FLAG(std::string, tokens, "", "evaluation token ids (.jsonl id lists, .u32/.bin, .i32)");
ABSL_FLAG(std::string, adapter, "", "PEFT LoRA adapter directory added to the model's weights");
ABSL_FLAG(int, max_windows, 0, "evaluate at most this many windows (0: all)");
ABSL_FLAG(int, batch_windows, 8, "windows per forward pass");

namespace caliber::cli {
namespace {

absl::StatusOr<PerplexityResult> Evaluate() {
  const std::string text = absl::GetFlag(FLAGS_text);
  const std::string tokens = absl::GetFlag(FLAGS_tokens);
  if (text.empty() == tokens.empty()) {
    return absl::InvalidArgumentError("pass exactly one of --text FILE or --tokens FILE");
  }
  const int act_bits = absl::GetFlag(FLAGS_act_bits);  // 0: as the checkpoint is served
  if (absl::Status s = ValidateActBits(act_bits); act_bits != 0 && !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--act-bits: ", std::string(s.message())));
  }
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  const std::string adapter = absl::GetFlag(FLAGS_adapter);
  // A gptq_lora checkpoint keeps its B·A part in DIR/adapter; without it the quantized base
  // alone is evaluated, which is legitimate but rarely what was meant: say so.
  if (std::error_code ec; adapter.empty() && std::filesystem::is_directory(std::filesystem::path(model_dir) / "adapter", ec)) {
    std::fprintf(stderr,
                 "caliber eval: note: %s/adapter holds a LoRA adapter that is NOT applied; pass --adapter %s/adapter "
                 "to evaluate the checkpoint as served with it\n",
                 model_dir.c_str(), model_dir.c_str());
  }
  absl::StatusOr<std::unique_ptr<Model>> model = LoadModel(model_dir, adapter);
  if (!model.ok()) return model.status();
  absl::StatusOr<std::vector<int32_t>> stream =
      LoadTokens(text.empty() ? tokens : text, absl::GetFlag(FLAGS_format), !text.empty(),
                 model_dir, (*model)->config().vocab_size);
  if (!stream.ok()) return stream.status();

  ProgressBar bar("eval");
  PerplexityOptions options;
  options.seq_len = absl::GetFlag(FLAGS_seq_len);
  options.max_windows = absl::GetFlag(FLAGS_max_windows);
  options.batch_windows = absl::GetFlag(FLAGS_batch_windows);
  options.act_bits = act_bits == 0 ? (*model)->config().served_act_bits() : act_bits;
  options.progress = [&bar](int done, int total) { bar.Update(done, total); };
  return EvaluatePerplexity(**model, *stream, options);
}

}  // namespace

int RunEval(int argc, char** argv) {
  static const CommandSpec spec{
      "eval",
      "caliber eval --model DIR [--adapter DIR] (--text FILE | --tokens FILE) [--seq-len 256] "
      "[--max-windows N] [--act-bits 16|8] [--json]",
      {"model", "adapter", "text", "tokens", "format", "seq_len", "max_windows", "batch_windows", "act_bits",
       "json"},
      "Exit codes: 0 ok, 1 the evaluation failed, 2 usage error."};
  const ParsedCommand parsed = ParseCommand(argc, argv, spec, /*env_overrides=*/false);
  if (parsed.exit_code) return *parsed.exit_code;
  if (!parsed.args.empty()) return UsageError(spec, "unexpected argument '" + parsed.args[0] + "'");
  absl::StatusOr<PerplexityResult> r = Evaluate();
  if (!r.ok()) {
    std::fprintf(stderr, "caliber eval: %s\n", r.status().ToString().c_str());
    return 1;
  }
  if (absl::GetFlag(FLAGS_json)) {
    const nlohmann::json j = {{"ppl", r->ppl},         {"nll", r->nll},
                              {"tokens", r->tokens},   {"windows", r->windows},
                              {"seconds", r->seconds}, {"act_bits", r->act_bits},
                              {"window_nll", r->window_nll}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity %.4f  (mean NLL %.6f over %lld tokens in %d windows of %d, %s, %.2fs)\n",
                r->ppl, r->nll, static_cast<long long>(r->tokens), r->windows,
                absl::GetFlag(FLAGS_seq_len),
                r->act_bits == 16 ? "float activations" : "INT8 per-token activations", r->seconds);
  }
  return 0;
}

}  // namespace caliber::cli
