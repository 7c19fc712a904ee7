// A quantized layer as bytes: how a worker hands a finished layer to the coordinator through
// the object store. A safetensors image (codes, scales, zeros, g_idx, low-rank factors in their
// exact float32/int values) whose metadata holds the reports as JSON, so decoding gives back
// exactly the LayerQuantResult that was encoded and a checkpoint assembled from decoded layers
// is byte-identical to one written in the quantizing process.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/calib/layer_quantizer.h"

namespace caliber {

std::string EncodeLayerResult(const LayerQuantResult& layer);
// Validates everything it reads (a truncated or foreign object is an error, never a crash).
absl::StatusOr<LayerQuantResult> DecodeLayerResult(std::string_view bytes);

// Activations at a layer boundary [rows x cols] float32, with the layer they follow.
std::string EncodeActivations(int after_layer, const MatrixF& hidden);
absl::StatusOr<MatrixF> DecodeActivations(std::string_view bytes, int expected_after_layer,
                                          Eigen::Index expected_rows, Eigen::Index expected_cols);

}  // namespace caliber
