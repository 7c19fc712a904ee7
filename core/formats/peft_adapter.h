// The low-rank part B·A of quantized linears as a PEFT LoRA adapter, the form vLLM serves next
// to a GPTQ base: DIR/adapter_config.json (r, lora_alpha = r so the scaling alpha/r is 1,
// target_modules) and DIR/adapter_model.safetensors with
//   base_model.model.model.layers.{i}.<module>.lora_A.weight [r x in]
//   base_model.model.model.layers.{i}.<module>.lora_B.weight [out x r]
// in float32, so base + adapter computes exactly Q + B·A.
#pragma once

#include <set>
#include <string>

#include "absl/status/status.h"
#include "core/io/safetensors.h"
#include "core/model/weights.h"
#include "core/tensor/matrix.h"

namespace caliber {

class PeftAdapterBuilder {
 public:
  // `base` is the module's tensor prefix, e.g. "model.layers.3.self_attn.q_proj".
  absl::Status Add(const std::string& base, const MatrixF& lora_a, const MatrixF& lora_b);
  bool empty() const { return rank_ == 0; }
  int rank() const { return rank_; }
  // Creates `dir` and writes both files; base_model_name_or_path records `base_model`.
  absl::Status Write(const std::string& dir, const std::string& base_model) const;

 private:
  SafetensorsWriter tensors_;
  std::set<std::string> target_modules_;  // "q_proj", "down_proj", ...
  int rank_ = 0;
};

// Adds scaling · B·A of every module in the adapter at `dir` to `weights` (scaling =
// lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora). Unknown modules, layers out of
// range, a lora_A without its lora_B and shape mismatches are InvalidArgument errors.
absl::Status ApplyPeftAdapter(const std::string& dir, const ModelConfig& config,
                              ModelWeights& weights);

}  // namespace caliber
