#include "core/formats/checkpoint_format.h"

#include <utility>

#include "core/formats/compressed_tensors_checkpoint.h"
#include "core/formats/gptq_checkpoint.h"
#include "core/quant/act_quant.h"

namespace caliber {

CheckpointFormat CheckpointFormatFor(const CalibrationOptions& options) {
  return options.act_bits == kActBitsFloat ? CheckpointFormat::kGptqV1
                                           : CheckpointFormat::kCompressedTensors;
}

std::string_view CheckpointFormatName(CheckpointFormat format) {
  return format == CheckpointFormat::kGptqV1 ? "gptq" : "compressed-tensors";
}

absl::Status CheckCheckpointFormat(const CalibrationOptions& options, const ModelConfig& config) {
  if (absl::Status s = ValidateActBits(options.act_bits); !s.ok()) return s;
  if (CheckpointFormatFor(options) == CheckpointFormat::kCompressedTensors) {
    return CheckCompressedTensorsFormat(options.spec, options.act_bits, config);
  }
  return absl::OkStatus();
}

std::unique_ptr<QuantizedCheckpointWriter> MakeCheckpointWriter(
    const CalibrationOptions& options, const ModelConfig& config, const Checkpoint& source,
    std::string source_dir, std::string out_dir, nlohmann::json meta) {
  if (CheckpointFormatFor(options) == CheckpointFormat::kCompressedTensors) {
    return std::make_unique<CompressedTensorsCheckpointWriter>(
        config, source, std::move(source_dir), std::move(out_dir), options.spec, options.act_bits,
        std::move(meta));
  }
  return std::make_unique<GptqCheckpointWriter>(config, source, std::move(source_dir),
                                                std::move(out_dir), options.spec, std::move(meta));
}

}  // namespace caliber
