// `caliber eval`: perplexity of a model on text or pre-tokenized ids.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "core/eval/perplexity.h"
#include "core/model/model.h"
#include "core/text/token_source.h"
#include "core/text/tokenizer.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, model, "", "model directory (config.json, safetensors, tokenizer)");
ABSL_FLAG(std::string, text, "", "evaluation text file (tokenized with the model's tokenizer)");
ABSL_FLAG(std::string, tokens, "", "evaluation token ids (.jsonl id lists, .u32/.bin, .i32)");
ABSL_FLAG(std::string, format, "auto", "input format: auto (by extension), text, jsonl, u32, i32");
ABSL_FLAG(int, seq_len, 256, "window length in tokens");
ABSL_FLAG(int, max_windows, 0, "evaluate at most this many windows (0: all)");
ABSL_FLAG(int, batch_windows, 8, "windows per forward pass");
ABSL_FLAG(bool, json, false, "print one JSON object instead of a table");

namespace caliber::cli {
namespace {

// The input file and the format it is read in: --text defaults to plain text whatever its
// extension; --tokens must name a token format (by flag or extension).
absl::StatusOr<std::pair<std::string, TokenFormat>> ResolveInput() {
  const std::string text = absl::GetFlag(FLAGS_text);
  const std::string tokens = absl::GetFlag(FLAGS_tokens);
  if (text.empty() == tokens.empty()) {
    return absl::InvalidArgumentError("pass exactly one of --text FILE or --tokens FILE");
  }
  absl::StatusOr<TokenFormat> format = ParseTokenFormat(absl::GetFlag(FLAGS_format));
  if (!format.ok()) return format.status();
  if (!text.empty()) {
    if (*format == TokenFormat::kAuto) {
      const std::string ext = std::filesystem::path(text).extension().string();
      const bool ids_ext = ext == ".jsonl" || ext == ".u32" || ext == ".i32" || ext == ".bin";
      *format = ids_ext ? TokenFormat::kAuto : TokenFormat::kText;
    }
    return std::make_pair(text, *format);
  }
  return std::make_pair(tokens, *format);
}

absl::StatusOr<PerplexityResult> Evaluate() {
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  if (model_dir.empty()) return absl::InvalidArgumentError("--model is required");
  absl::StatusOr<std::pair<std::string, TokenFormat>> input = ResolveInput();
  if (!input.ok()) return input.status();

  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(model_dir);
  if (!model.ok()) return model.status();
  std::unique_ptr<Tokenizer> tokenizer;
  if (input->second == TokenFormat::kText) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(model_dir);
    if (!t.ok()) return t.status();
    tokenizer = *std::move(t);
  }
  absl::StatusOr<std::vector<int32_t>> stream = LoadTokenStream(
      input->first, input->second, tokenizer.get(), (*model)->config().vocab_size);
  if (!stream.ok()) return stream.status();

  ProgressBar bar("eval");
  PerplexityOptions options;
  options.seq_len = absl::GetFlag(FLAGS_seq_len);
  options.max_windows = absl::GetFlag(FLAGS_max_windows);
  options.batch_windows = absl::GetFlag(FLAGS_batch_windows);
  options.progress = [&bar](int done, int total) { bar.Update(done, total); };
  return EvaluatePerplexity(**model, *stream, options);
}

}  // namespace

int RunEval(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "caliber eval --model DIR (--text FILE | --tokens FILE) [--seq-len 256] "
      "[--max-windows N] [--json]");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<PerplexityResult> r = Evaluate();
  if (!r.ok()) {
    std::fprintf(stderr, "caliber eval: %s\n", r.status().ToString().c_str());
    return 1;
  }
  if (absl::GetFlag(FLAGS_json)) {
    const nlohmann::json j = {{"ppl", r->ppl},         {"nll", r->nll},
                              {"tokens", r->tokens},   {"windows", r->windows},
                              {"seconds", r->seconds}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity %.4f  (mean NLL %.6f over %lld tokens in %d windows of %d, %.2fs)\n",
                r->ppl, r->nll, static_cast<long long>(r->tokens), r->windows,
                absl::GetFlag(FLAGS_seq_len), r->seconds);
  }
  return 0;
}

}  // namespace caliber::cli
