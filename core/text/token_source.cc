#include "core/text/token_source.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace caliber {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Missing paths are NotFound; directories are not token files.
absl::Status CheckIsFile(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  if (fs::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a token file"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot be read"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot be read"));
  return text;
}

absl::Status OutOfVocabulary(const std::string& where, const absl::AlphaNum& id, int vocab_size) {
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": token id ", id, " is outside the vocabulary [0, ", vocab_size, ")"));
}

// Raw little-endian 32-bit ids; `is_signed` picks int32 over uint32.
absl::StatusOr<std::vector<int32_t>> LoadRaw(const std::string& path, bool is_signed,
                                             int vocab_size) {
  std::error_code ec;
  const uintmax_t bytes = fs::file_size(path, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot be read"));
  if (bytes % 4 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": size ", bytes,
                                                   " bytes is not a multiple of 4 (raw ",
                                                   is_signed ? "int32" : "uint32", " token ids)"));
  }
  std::vector<int32_t> ids(bytes / 4);
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(ids.data()), static_cast<std::streamsize>(bytes))) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot be read"));
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    uint32_t raw;
    std::memcpy(&raw, &ids[i], sizeof(raw));
    if constexpr (std::endian::native == std::endian::big) {
      raw = (raw >> 24) | ((raw >> 8) & 0xff00u) | ((raw << 8) & 0xff0000u) | (raw << 24);
    }
    const int64_t id =
        is_signed ? static_cast<int64_t>(std::bit_cast<int32_t>(raw)) : static_cast<int64_t>(raw);
    if (id < 0 || id >= vocab_size) {
      return OutOfVocabulary(absl::StrCat(path, ": token ", i), id, vocab_size);
    }
    ids[i] = static_cast<int32_t>(id);
  }
  return ids;
}

absl::StatusOr<std::vector<int32_t>> LoadText(const std::string& path, const Tokenizer* tokenizer,
                                              int vocab_size) {
  if (tokenizer == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": text input needs a tokenizer (tokenizer.model)"));
  }
  absl::StatusOr<std::string> text = ReadText(path);
  if (!text.ok()) return text.status();
  std::vector<int32_t> ids = tokenizer->Encode(*text, /*add_bos=*/true);
  // The tokenizer's vocabulary may be larger than the model's embedding table.
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= vocab_size) {
      return OutOfVocabulary(absl::StrCat(path, ": token ", i), ids[i], vocab_size);
    }
  }
  return ids;
}

bool IsBlank(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](unsigned char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

// One JSONL line: a bare id array or an object holding "input_ids" / "ids".
absl::StatusOr<std::vector<int32_t>> ParseJsonlLine(std::string_view line, const std::string& where,
                                                    int vocab_size) {
  const json value = json::parse(line.begin(), line.end(), /*cb=*/nullptr,
                                 /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON"));
  }
  const json* ids = &value;
  if (value.is_object()) {
    auto it = value.find("input_ids");
    if (it == value.end()) it = value.find("ids");
    if (it == value.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": object has no \"input_ids\" or \"ids\" key"));
    }
    ids = &*it;
  }
  if (!ids->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": expected an array of token ids or an object with \"input_ids\""));
  }
  std::vector<int32_t> out;
  out.reserve(ids->size());
  for (size_t k = 0; k < ids->size(); ++k) {
    const json& id = (*ids)[k];
    const std::string position = absl::StrCat(where, ", element ", k);
    if (!id.is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(position, ": token ids must be integers, got ", id.type_name()));
    }
    // Non-negative JSON integers are stored unsigned and may exceed int64; the rest are signed.
    const bool in_range = id.is_number_unsigned()
                              ? id.get<uint64_t>() < static_cast<uint64_t>(vocab_size)
                              : id.get<int64_t>() >= 0 && id.get<int64_t>() < vocab_size;
    if (!in_range) return OutOfVocabulary(position, id.dump(), vocab_size);
    out.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<int32_t>>> LoadJsonl(const std::string& path,
                                                            int vocab_size) {
  absl::StatusOr<std::string> text = ReadText(path);
  if (!text.ok()) return text.status();
  std::vector<std::vector<int32_t>> docs;
  std::string_view rest = *text;
  for (size_t line_number = 1; !rest.empty(); ++line_number) {
    const size_t end = rest.find('\n');
    const std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (IsBlank(line)) continue;
    absl::StatusOr<std::vector<int32_t>> ids =
        ParseJsonlLine(line, absl::StrCat(path, ":", line_number), vocab_size);
    if (!ids.ok()) return ids.status();
    docs.push_back(*std::move(ids));
  }
  return docs;
}

}  // namespace

absl::StatusOr<TokenFormat> ParseTokenFormat(std::string_view name) {
  for (TokenFormat format : {TokenFormat::kAuto, TokenFormat::kText, TokenFormat::kJsonl,
                             TokenFormat::kU32, TokenFormat::kI32}) {
    if (name == TokenFormatName(format)) return format;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown token format '", std::string(name),
                                                 "' (expected auto, text, jsonl, u32 or i32)"));
}

std::string_view TokenFormatName(TokenFormat format) {
  switch (format) {
    case TokenFormat::kAuto:
      return "auto";
    case TokenFormat::kText:
      return "text";
    case TokenFormat::kJsonl:
      return "jsonl";
    case TokenFormat::kU32:
      return "u32";
    case TokenFormat::kI32:
      return "i32";
  }
  return "unknown";
}

absl::StatusOr<TokenFormat> ResolveTokenFormat(const std::string& path, TokenFormat format) {
  if (format != TokenFormat::kAuto) return format;
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".txt") return TokenFormat::kText;
  if (ext == ".jsonl") return TokenFormat::kJsonl;
  if (ext == ".u32" || ext == ".bin") return TokenFormat::kU32;
  if (ext == ".i32") return TokenFormat::kI32;
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": cannot tell the token format from the extension '", ext,
                   "'; pass a format explicitly (text, jsonl, u32 or i32)"));
}

absl::StatusOr<std::vector<std::vector<int32_t>>> LoadTokenDocuments(const std::string& path,
                                                                     TokenFormat format,
                                                                     const Tokenizer* tokenizer,
                                                                     int vocab_size) {
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": vocab_size must be positive, got ", vocab_size));
  }
  if (absl::Status s = CheckIsFile(path); !s.ok()) return s;
  absl::StatusOr<TokenFormat> resolved = ResolveTokenFormat(path, format);
  if (!resolved.ok()) return resolved.status();

  absl::StatusOr<std::vector<std::vector<int32_t>>> docs;
  absl::StatusOr<std::vector<int32_t>> single;
  switch (*resolved) {
    case TokenFormat::kJsonl:
      docs = LoadJsonl(path, vocab_size);
      break;
    case TokenFormat::kText:
      single = LoadText(path, tokenizer, vocab_size);
      break;
    case TokenFormat::kU32:
    case TokenFormat::kI32:
      single = LoadRaw(path, *resolved == TokenFormat::kI32, vocab_size);
      break;
    case TokenFormat::kAuto:
      return absl::InternalError("token format left unresolved");
  }
  if (*resolved != TokenFormat::kJsonl) {
    if (!single.ok()) return single.status();
    docs = std::vector<std::vector<int32_t>>();
    docs->push_back(*std::move(single));
  }
  if (!docs.ok()) return docs.status();
  const bool empty = std::all_of(docs->begin(), docs->end(),
                                 [](const std::vector<int32_t>& d) { return d.empty(); });
  if (empty) return absl::InvalidArgumentError(absl::StrCat(path, ": contains no token ids"));
  return docs;
}

absl::StatusOr<std::vector<int32_t>> LoadTokenStream(const std::string& path, TokenFormat format,
                                                     const Tokenizer* tokenizer, int vocab_size) {
  absl::StatusOr<std::vector<std::vector<int32_t>>> docs =
      LoadTokenDocuments(path, format, tokenizer, vocab_size);
  if (!docs.ok()) return docs.status();
  if (docs->size() == 1) return std::move(docs->front());
  size_t total = 0;
  for (const std::vector<int32_t>& doc : *docs) total += doc.size();
  std::vector<int32_t> stream;
  stream.reserve(total);
  for (const std::vector<int32_t>& doc : *docs) stream.insert(stream.end(), doc.begin(), doc.end());
  return stream;
}

absl::StatusOr<std::vector<std::vector<int32_t>>> CutWindows(const std::vector<int32_t>& stream,
                                                             int seq_len, int max_windows) {
  if (seq_len < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("window length must be at least 2 tokens, got ", seq_len));
  }
  size_t count = stream.size() / static_cast<size_t>(seq_len);
  if (count == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("a stream of ", stream.size(), " tokens holds no full window of ", seq_len));
  }
  if (max_windows > 0) count = std::min(count, static_cast<size_t>(max_windows));
  std::vector<std::vector<int32_t>> windows;
  windows.reserve(count);
  for (size_t w = 0; w < count; ++w) {
    const auto begin = stream.begin() + static_cast<std::ptrdiff_t>(w * seq_len);
    windows.emplace_back(begin, begin + seq_len);
  }
  return windows;
}

}  // namespace caliber
