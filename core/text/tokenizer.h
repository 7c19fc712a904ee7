// SentencePiece tokenizers: the `tokenizer.model` of Llama 1/2, Mistral and the fixtures.
// Tokenizers that ship only a Hugging Face `tokenizer.json` (Llama 3, Qwen) are not read here;
// their token ids reach Caliber pre-tokenized (see token_source.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"


namespace caliber {

class Tokenizer {
 public:
  // `model_dir_or_file` is a checkpoint directory holding `tokenizer.model`, or the .model
  // file itself. `tokenizer_config.json` next to the model, when present, supplies
  // add_bos_token (default true) and add_eos_token (default false). NotFound when the model
  // file is absent; InvalidArgument when SentencePiece rejects it or the JSON is malformed.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& model_dir_or_file);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Encodes `text` as a single string, as sentencepiece's encode() does and as Hugging Face's
  // LlamaTokenizer (legacy=false) does for plain text: one dummy-prefix space at the start,
  // newlines kept (byte fallback), and special-token spellings such as "<s>" treated as
  // ordinary characters. BOS / EOS are added only when asked for and when the model has them.
  std::vector<int32_t> Encode(std::string_view text, bool add_bos, bool add_eos = false) const;

  // Control tokens (<s>, </s>) decode to nothing; ids outside the vocabulary decode as <unk>.
  std::string Decode(absl::Span<const int32_t> ids) const;

  int bos_id() const;  // -1 when the model defines none
  int eos_id() const;  // -1 when the model defines none
  int unk_id() const;
  int vocab_size() const;

  // From tokenizer_config.json: what the model's own pipeline adds around a text.
  bool add_bos_token() const { return add_bos_token_; }
  bool add_eos_token() const { return add_eos_token_; }
  const std::string& model_path() const { return model_path_; }

 private:
  Tokenizer();

  void* sp_ = nullptr;  // a processor of the SentencePiece shim (core/text/sentencepiece/)
  std::string model_path_;
  bool add_bos_token_ = true;
  bool add_eos_token_ = false;
};

}  // namespace caliber
