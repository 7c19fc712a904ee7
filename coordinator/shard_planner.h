// Splits a model's decoder layers into contiguous stages, one per worker: the split that
// minimizes the largest stage's FLOPs (the critical path when stages work in parallel) among
// those where every stage fits its worker's declared memory.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/config.h"

namespace caliber::coordinator {

struct LayerCost {
  double flops = 0;       // calibration + quantization work of the layer
  int64_t bytes = 0;      // memory to hold it while it is worked on
};

// Cost of each decoder layer for `tokens` calibration tokens of `seq_len`.
std::vector<LayerCost> EstimateLayerCosts(const ModelConfig& config, int64_t tokens, int seq_len);
// Memory a stage needs besides its layers: the activations at its boundary.
int64_t StageFixedBytes(const ModelConfig& config, int64_t tokens);

struct StageRange {
  int first = 0;
  int end = 0;  // exclusive
};

// Stage s goes to the worker with memory `worker_bytes[s]`; stage count = worker count, each
// stage non-empty (so at most as many workers as layers should be passed). FailedPrecondition
// when no split fits.
absl::StatusOr<std::vector<StageRange>> PlanStages(const std::vector<LayerCost>& layers,
                                                   const std::vector<int64_t>& worker_bytes,
                                                   int64_t fixed_bytes);

}  // namespace caliber::coordinator
