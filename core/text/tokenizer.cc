#include "core/text/tokenizer.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

#include "core/text/sentencepiece_loader.h"

namespace caliber {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Reads add_bos_token / add_eos_token; absent or null keys keep the defaults given.
absl::Status ReadTokenizerConfig(const fs::path& path, bool& add_bos, bool& add_eos) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": cannot be read"));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const json config = json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": not a JSON object"));
  }
  for (auto [key, flag] : {std::pair<const char*, bool*>{"add_bos_token", &add_bos},
                           std::pair<const char*, bool*>{"add_eos_token", &add_eos}}) {
    const auto it = config.find(key);
    if (it == config.end() || it->is_null()) continue;
    if (!it->is_boolean()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": ", key, " must be true or false"));
    }
    *flag = it->get<bool>();
  }
  return absl::OkStatus();
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() {
  if (sp_ != nullptr) SentencePieceApi()->free(sp_);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& model_dir_or_file) {
  std::error_code ec;
  const fs::path input(model_dir_or_file);
  const bool is_dir = fs::is_directory(input, ec);
  const fs::path model = is_dir ? input / "tokenizer.model" : input;
  if (!is_dir && !fs::exists(input, ec)) {
    return absl::NotFoundError(
        absl::StrCat(input.string(),
                     ": no such file or directory (expected a model directory holding "
                     "tokenizer.model, or the tokenizer.model file itself)"));
  }
  if (!fs::is_regular_file(model, ec)) {
    std::string hint;
    if (is_dir && fs::exists(input / "tokenizer.json", ec)) {
      hint =
          " (only tokenizer.json is there; Caliber reads SentencePiece models only, so pass "
          "pre-tokenized ids instead)";
    }
    return absl::NotFoundError(absl::StrCat(model.string(), ": no such file", hint));
  }

  absl::StatusOr<const SentencePieceFunctions*> api = LoadSentencePiece();
  if (!api.ok()) return api.status();
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  tokenizer->model_path_ = model.string();
  char err[512] = {};
  tokenizer->sp_ = (*api)->load(tokenizer->model_path_.c_str(), err, sizeof(err));
  if (tokenizer->sp_ == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(model.string(), ": not a SentencePiece model: ", err));
  }

  const fs::path config = model.parent_path() / "tokenizer_config.json";
  if (fs::exists(config, ec)) {
    absl::Status read =
        ReadTokenizerConfig(config, tokenizer->add_bos_token_, tokenizer->add_eos_token_);
    if (!read.ok()) return read;
  }
  return tokenizer;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_bos, bool add_eos) const {
  int* pieces = nullptr;
  // Encode only fails on an unloaded processor, which Load never hands out.
  const size_t n = SentencePieceApi()->encode(sp_, text.data(), text.size(), &pieces);
  std::vector<int32_t> ids;
  ids.reserve(n + 2);
  if (add_bos && bos_id() >= 0) ids.push_back(bos_id());
  ids.insert(ids.end(), pieces, pieces + n);
  std::free(pieces);
  if (add_eos && eos_id() >= 0) ids.push_back(eos_id());
  return ids;
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids) const {
  // SentencePiece does not range-check ids, so out-of-vocabulary ones are mapped first.
  std::vector<int> pieces;
  pieces.reserve(ids.size());
  for (const int32_t id : ids) {
    pieces.push_back(id >= 0 && id < vocab_size() ? id : unk_id());
  }
  size_t len = 0;
  char* raw = SentencePieceApi()->decode(sp_, pieces.data(), pieces.size(), &len);
  std::string text(raw, len);
  std::free(raw);
  return text;
}

int Tokenizer::bos_id() const { return SentencePieceApi()->info(sp_, 0); }
int Tokenizer::eos_id() const { return SentencePieceApi()->info(sp_, 1); }
int Tokenizer::unk_id() const { return SentencePieceApi()->info(sp_, 2); }
int Tokenizer::vocab_size() const { return SentencePieceApi()->info(sp_, 3); }

}  // namespace caliber
