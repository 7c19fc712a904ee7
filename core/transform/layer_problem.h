// What HeRo-Q learns from: per decoder layer, the norm-folded weights and the Hessians of the
// four linear inputs of the unquantized model (one fp calibration pass, layer by layer, the
// way pipelined calibration propagates). The transforms are exact in fp, so these fix every
// transformed Hessian H̃ = M H Mᵀ the objective needs.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"
#include "core/model/config.h"
#include "core/model/decoder_layer.h"
#include "core/model/rope.h"
#include "core/transform/heroq_objective.h"

namespace caliber {

// Layer `layer` from its (original) weights and its calibration inputs `hidden`
// [num_seqs*seq_len x hidden], which are replaced by the layer's outputs.
absl::StatusOr<LayerProblem> BuildLayerProblem(const ModelConfig& config, const RopeTable& rope,
                                               const Checkpoint& checkpoint, int layer,
                                               const SequenceBatch& samples, int batch_seqs,
                                               MatrixF& hidden);

}  // namespace caliber
