// One-shot quantization of a whole model on one machine: embeds the calibration segments and
// runs QuantizeLayer over every decoder layer in order, loading one layer's weights at a time
// (memory: one layer's weights and Hessians plus the activations at one layer boundary).
#pragma once

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/calib/calibration_set.h"
#include "core/calib/layer_quantizer.h"
#include "core/io/safetensors.h"

namespace caliber {

struct ModelQuantResult {
  std::vector<LayerQuantResult> layers;
  double seconds = 0;
};

// Receives each layer as soon as it is quantized (e.g. to write it out); an error aborts.
using LayerDoneCallback = std::function<absl::Status(const LayerQuantResult&)>;

absl::StatusOr<ModelQuantResult> QuantizeModel(const ModelConfig& config,
                                               const Checkpoint& checkpoint,
                                               const CalibrationSet& calib,
                                               const CalibrationOptions& options,
                                               const LayerDoneCallback& on_layer = nullptr);

}  // namespace caliber
