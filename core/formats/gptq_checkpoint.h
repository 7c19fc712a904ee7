// Quantized checkpoints in the GPTQ v1 layout that vLLM and transformers (optimum/AutoGPTQ)
// load: per linear `qweight`, `qzeros`, `scales` (fp16) and `g_idx` (gptq_pack.h), everything
// else (embeddings, norms, lm_head, biases) copied in the source dtype, and config.json with a
// `quantization_config` {quant_method "gptq", ...}. The lifecycle (staging directory, atomic
// commit, tokenizer files, PEFT adapter for a low-rank part) is checkpoint_writer.h's.
#pragma once

#include <string>
#include <vector>

#include "core/formats/checkpoint_writer.h"
#include "core/quant/quant_spec.h"

namespace caliber {

class GptqCheckpointWriter : public QuantizedCheckpointWriter {
 public:
  GptqCheckpointWriter(const ModelConfig& config, const Checkpoint& source,
                       std::string source_dir, std::string out_dir, const QuantSpec& spec,
                       nlohmann::json meta);

 private:
  absl::Status CheckFormat() const override;
  absl::StatusOr<std::vector<PackedTensor>> PackModule(const std::string& base,
                                                       const QuantizedLinear& q,
                                                       DType source_dtype) const override;
  nlohmann::json QuantizationConfig() const override;

  QuantSpec spec_;
  nlohmann::json meta_;
};

}  // namespace caliber
