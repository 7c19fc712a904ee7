// The files of a Hugging Face model directory besides its weights: config.json and the
// tokenizer/generation files every derived checkpoint carries over unchanged.
#pragma once

#include <array>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace caliber {

// Copied when present; none is required.
inline constexpr std::array<const char*, 5> kTokenizerFiles = {
    "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "generation_config.json"};

// DIR/config.json as a JSON object (InvalidArgument if it is not one).
absl::StatusOr<nlohmann::json> ReadConfigJson(const std::string& dir);

// Copies each of kTokenizerFiles that exists in `from` into `to` (replacing what is there).
absl::Status CopyTokenizerFiles(const std::string& from, const std::string& to);

}  // namespace caliber
