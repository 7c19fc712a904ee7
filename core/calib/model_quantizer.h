// Quantization of a model's decoder layers, one layer in memory at a time. The same functions
// run a whole model in one process (`caliber quantize`) and one stage — a contiguous layer
// range — of a distributed job (workers/stage_runner), so both produce the same bytes.
#pragma once

#include <functional>
#include <map>
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

// Checks a calibration set against the model (shape, seq_len, vocabulary).
absl::Status ValidateCalibrationSet(const ModelConfig& config, const CalibrationSet& calib);

// The inputs of layer 0: the embeddings of the calibration tokens [nsamples*seq_len x hidden].
absl::StatusOr<MatrixF> EmbedCalibrationTokens(const ModelConfig& config,
                                               const Checkpoint& checkpoint,
                                               const CalibrationSet& calib);

// Layers [first, end) in order, `hidden` holding the inputs of `first` and on return the
// outputs of end-1. A layer whose result is in `done` is not quantized again: it is replayed
// (its stored result's weights under kQuantized, the original ones under kFp), bit-identical
// to the run that quantized it. `on_layer` sees only newly quantized layers.
absl::Status QuantizeLayerRange(const ModelConfig& config, const Checkpoint& checkpoint,
                                const CalibrationOptions& options, const SequenceBatch& samples,
                                int first, int end, const std::map<int, LayerQuantResult>& done,
                                MatrixF& hidden, const LayerDoneCallback& on_layer);

// Every layer: embed, then QuantizeLayerRange over [0, num_hidden_layers).
absl::StatusOr<ModelQuantResult> QuantizeModel(const ModelConfig& config,
                                               const Checkpoint& checkpoint,
                                               const CalibrationSet& calib,
                                               const CalibrationOptions& options,
                                               const LayerDoneCallback& on_layer = nullptr);

}  // namespace caliber
