// Calibration and evaluation input as token ids.
//
// Formats (TokenFormat; kAuto picks one from the file extension):
//   text  (.txt)          UTF-8 text. The whole file is encoded as ONE string with BOS
//                         prepended (the GPTQ / WikiText-2 perplexity convention); needs a
//                         Tokenizer.
//   jsonl (.jsonl)        One JSON value per line, each line one document (segment):
//                           [1, 450, 4996, 17354]                   a bare array of ids, or
//                           {"input_ids": [1, 450, 4996], ...}      an object with "input_ids",
//                           {"ids": [1, 450, 4996], ...}            or with "ids".
//                         Other keys of an object are ignored. Blank lines are skipped. Ids are
//                         taken exactly as stored (no BOS/EOS is added: the pipeline that wrote
//                         the file decides) and must be JSON integers. A line that is not such a
//                         value is an error naming its line number.
//   u32   (.u32, .bin)    Raw little-endian uint32 ids, no header; one document.
//   i32   (.i32)          Raw little-endian int32 ids, no header; one document.
// Every id must lie in [0, vocab_size); an error names the offending position.
//
// Perplexity consumes one flat stream cut into windows (LoadTokenStream + CutWindows);
// calibration may use the same windows, or the per-line documents of a JSONL file
// (LoadTokenDocuments) when a pipeline ships ready-made segments.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/text/tokenizer.h"

namespace caliber {

enum class TokenFormat { kAuto, kText, kJsonl, kU32, kI32 };

// "auto", "text", "jsonl", "u32", "i32".
absl::StatusOr<TokenFormat> ParseTokenFormat(std::string_view name);
std::string_view TokenFormatName(TokenFormat format);

// The format kAuto resolves to for `path`; InvalidArgument for an unknown extension.
absl::StatusOr<TokenFormat> ResolveTokenFormat(const std::string& path, TokenFormat format);

// The file's documents in order: one per non-blank JSONL line, a single one for the other
// formats. `tokenizer` is required for text and unused otherwise. NotFound if the file is
// missing; InvalidArgument for malformed content or an id outside [0, vocab_size).
absl::StatusOr<std::vector<std::vector<int32_t>>> LoadTokenDocuments(const std::string& path,
                                                                     TokenFormat format,
                                                                     const Tokenizer* tokenizer,
                                                                     int vocab_size);

// All documents concatenated into one stream.
absl::StatusOr<std::vector<int32_t>> LoadTokenStream(const std::string& path, TokenFormat format,
                                                     const Tokenizer* tokenizer, int vocab_size);

// Consecutive non-overlapping windows of `seq_len` tokens from the start of `stream`, the
// partial tail dropped; at most `max_windows` of them when it is positive. InvalidArgument
// when seq_len < 2 or the stream holds no full window.
absl::StatusOr<std::vector<std::vector<int32_t>>> CutWindows(const std::vector<int32_t>& stream,
                                                             int seq_len, int max_windows);

}  // namespace caliber
