// A stage's learned transform as bytes: how a worker hands its layers' R2 and diagonals (and
// the shared R1) to the coordinator through the object store. A safetensors image of float64
// tensors — decoding gives back exactly what was encoded — whose metadata holds the first
// layer and the stage's report part as JSON.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/transform/stage_transform.h"

namespace caliber {

std::string EncodeStageTransform(const StageTransform& stage);
// Validates everything against `config` (a truncated or foreign object is an error).
absl::StatusOr<StageTransform> DecodeStageTransform(std::string_view bytes, const ModelConfig& config);

}  // namespace caliber
