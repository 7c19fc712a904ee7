// Loading what commands take from the user: models (with an optional LoRA adapter) and token
// streams from text or id files.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/model.h"
#include "core/text/token_source.h"

namespace caliber {

// Model::Load, then the PEFT adapter at `adapter_dir` (if non-empty) added to its weights.
absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& dir,
                                                 const std::string& adapter_dir);

// Token ids of `path`. `format` comes from --format; under auto a file given as text
// (`as_text`) is plain text unless its extension names an id format. Text is tokenized with
// the tokenizer of `model_dir`.
absl::StatusOr<std::vector<int32_t>> LoadTokens(const std::string& path, const std::string& format,
                                                bool as_text, const std::string& model_dir,
                                                int vocab_size);

}  // namespace caliber
