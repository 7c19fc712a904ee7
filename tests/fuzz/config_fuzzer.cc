// libFuzzer target: the input is config.json text for ModelConfig::FromJson. Beyond "no
// crash, no sanitizer report", an accepted config must honour what config.h promises:
// positive sizes and query heads that divide evenly into key/value groups.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/model/config.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();  // reported by libFuzzer as a crash with the input saved
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<caliber::ModelConfig> config = caliber::ModelConfig::FromJson(text, "fuzz.json");
  if (!config.ok()) {
    Check(!config.status().message().empty());
    return 0;
  }
  Check(config->hidden_size > 0 && config->intermediate_size > 0);
  Check(config->num_hidden_layers > 0 && config->vocab_size > 0);
  Check(config->num_attention_heads > 0 && config->num_key_value_heads > 0);
  Check(config->head_dim > 0);
  Check(config->num_attention_heads % config->num_key_value_heads == 0);
  // The forward pass sizes buffers from these; UBSan reports an int overflow here.
  Check(config->q_dim() > 0 && config->kv_dim() > 0);
  Check(!caliber::ArchitectureName(config->arch).empty());
  return 0;
}
