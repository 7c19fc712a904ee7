// Which checkpoint layout a job writes, decided in one place for `caliber quantize` and the
// coordinator: W·A16 jobs (act_bits 16) keep the GPTQ v1 format (gptq_checkpoint.h), W·A8 jobs
// write compressed-tensors pack-quantized with dynamic per-token INT8 input activations
// (compressed_tensors_checkpoint.h), the format vLLM reads activation quantization from.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "core/calib/layer_quantizer.h"
#include "core/formats/checkpoint_writer.h"
#include "nlohmann/json.hpp"

namespace caliber {

enum class CheckpointFormat { kGptqV1, kCompressedTensors };
CheckpointFormat CheckpointFormatFor(const CalibrationOptions& options);
std::string_view CheckpointFormatName(CheckpointFormat format);  // "gptq", "compressed-tensors"

// InvalidArgument when `options` (act_bits included) cannot be written in the job's format for
// `config`; meant for the start of a job, before calibration.
absl::Status CheckCheckpointFormat(const CalibrationOptions& options, const ModelConfig& config);

// The writer of the job's format; `meta` goes to quantization_config.meta.
std::unique_ptr<QuantizedCheckpointWriter> MakeCheckpointWriter(
    const CalibrationOptions& options, const ModelConfig& config, const Checkpoint& source,
    std::string source_dir, std::string out_dir, nlohmann::json meta);

}  // namespace caliber
