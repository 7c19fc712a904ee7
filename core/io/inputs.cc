#include "core/io/inputs.h"

#include <filesystem>

#include "core/formats/peft_adapter.h"
#include "core/text/tokenizer.h"

namespace caliber {

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& dir,
                                                 const std::string& adapter_dir) {
  if (dir.empty()) return absl::InvalidArgumentError("--model is required");
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(dir);
  if (!model.ok() || adapter_dir.empty()) return model;
  if (absl::Status s = ApplyPeftAdapter(adapter_dir, (*model)->config(), (*model)->mutable_weights());
      !s.ok()) {
    return s;
  }
  return model;
}

absl::StatusOr<std::vector<int32_t>> LoadTokens(const std::string& path, const std::string& format,
                                                bool as_text, const std::string& model_dir,
                                                int vocab_size) {
  absl::StatusOr<TokenFormat> parsed = ParseTokenFormat(format);
  if (!parsed.ok()) return parsed.status();
  if (*parsed == TokenFormat::kAuto && as_text) {
    const std::string ext = std::filesystem::path(path).extension().string();
    const bool ids_ext = ext == ".jsonl" || ext == ".u32" || ext == ".i32" || ext == ".bin";
    if (!ids_ext) *parsed = TokenFormat::kText;
  }
  absl::StatusOr<TokenFormat> resolved = ResolveTokenFormat(path, *parsed);
  if (!resolved.ok()) return resolved.status();
  std::unique_ptr<Tokenizer> tokenizer;
  if (*resolved == TokenFormat::kText) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(model_dir);
    if (!t.ok()) return t.status();
    tokenizer = *std::move(t);
  }
  return LoadTokenStream(path, *resolved, tokenizer.get(), vocab_size);
}

}  // namespace caliber
