// Quantized checkpoints in the GPTQ v1 layout that vLLM and transformers (optimum/AutoGPTQ)
// load: per linear `qweight`, `qzeros`, `scales` (fp16) and `g_idx`, everything else
// (embeddings, norms, lm_head, biases) copied in the source dtype, and config.json with a
// `quantization_config`. A low-rank part goes to DIR/adapter/ as a PEFT LoRA adapter
// (core/formats/peft_adapter.h).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/calib/layer_quantizer.h"
#include "core/formats/gptq_linear.h"
#include "core/formats/peft_adapter.h"
#include "core/io/safetensors.h"
#include "core/model/config.h"
#include "nlohmann/json.hpp"

namespace caliber {

// Collects quantized layers as they finish and writes the checkpoint directory at Finish().
// The directory appears atomically: everything is written under OUT.partial-<pid> and renamed
// to OUT last, so a reader never sees a partial checkpoint. OUT must not exist.
class GptqCheckpointWriter {
 public:
  GptqCheckpointWriter(const ModelConfig& config, const Checkpoint& source,
                       std::string source_dir, std::string out_dir, const QuantSpec& spec,
                       nlohmann::json meta);

  // The adapter's base_model_name_or_path (default: the source directory's name, so the same
  // model staged from different places gives the same bytes).
  void set_base_model_name(std::string name) { base_model_name_ = std::move(name); }

  // Fails early if OUT exists (so a job never computes what it cannot write).
  absl::Status CheckOutput() const;
  absl::Status AddLayer(const LayerQuantResult& layer);
  // Writes the checkpoint (all but report.json) into the staging directory and returns its
  // path, so the caller can evaluate exactly what was written before committing.
  absl::StatusOr<std::string> Stage();
  // Writes `report` as report.json and renames the staging directory to OUT.
  absl::Status Commit(const nlohmann::json& report);

 private:
  const ModelConfig& config_;
  const Checkpoint& source_;
  std::string source_dir_;
  std::string out_dir_;
  QuantSpec spec_;
  nlohmann::json meta_;
  SafetensorsWriter model_;
  PeftAdapterBuilder adapter_;
  std::vector<bool> layer_done_;
  std::string base_model_name_;
  std::string staged_;  // the staging directory once Stage() succeeded
};

}  // namespace caliber
