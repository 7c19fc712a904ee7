#include "core/text/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

// sentencepiece_processor.h declares `namespace absl { using std::string_view; }`, which
// collides with Debian abseil's own absl::string_view class. Renaming its namespace for the
// include keeps both: the alias is still std::string_view, so the library's symbols match.
#define absl caliber_sentencepiece_absl
#include <sentencepiece_processor.h>
#undef absl

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

Tokenizer::Tokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
Tokenizer::~Tokenizer() = default;

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

  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  tokenizer->model_path_ = model.string();
  const sentencepiece::util::Status loaded = tokenizer->sp_->Load(tokenizer->model_path_);
  if (!loaded.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(model.string(), ": not a SentencePiece model: ", loaded.error_message()));
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
  std::vector<int> pieces;
  // Encode only fails on an unloaded processor, which Load never hands out.
  sp_->Encode(text, &pieces).IgnoreError();
  std::vector<int32_t> ids;
  ids.reserve(pieces.size() + 2);
  if (add_bos && bos_id() >= 0) ids.push_back(bos_id());
  ids.insert(ids.end(), pieces.begin(), pieces.end());
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
  std::string text;
  sp_->Decode(pieces, &text).IgnoreError();
  return text;
}

int Tokenizer::bos_id() const { return sp_->bos_id(); }
int Tokenizer::eos_id() const { return sp_->eos_id(); }
int Tokenizer::unk_id() const { return sp_->unk_id(); }
int Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

}  // namespace caliber
