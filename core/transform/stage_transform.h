// The transform of a contiguous layer range [first, end): what one process builds, learns and
// reports — the whole model in `caliber quantize`, one stage in a distributed job, whose R1
// gradient shares a ShareReducer sums over the stages (heroq_learner.h).
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"
#include "core/model/config.h"
#include "core/model/decoder_layer.h"
#include "core/transform/heroq_objective.h"
#include "core/transform/transform_options.h"
#include "core/transform/transform_params.h"
#include "nlohmann/json.hpp"

namespace caliber {

struct StageTransform {
  int first_layer = 0;
  MatrixD r1;                          // the learned R1: the same in every stage of a job
  std::vector<LayerTransform> layers;  // of layers [first_layer, first_layer + layers.size())
  // This range's part of the report: "layers" (per layer: learning seconds, per module the
  // round-to-nearest error untransformed / at the start / learned, per input λmax, trace and
  // damped condition of H and H̃), "loss" (this range's share of the objective untransformed,
  // at the start and learned), the job's "loss_history", accepted/rejected steps, seconds.
  nlohmann::json report;
};

// Rotations and/or diagonals of `problems`' layers: randomized Hadamard R1 (seed
// options.seed) and R2 (seed + 1 + layer) when `rotate`, SmoothQuant diagonals at
// options.smooth_alpha when `smooth`, identity otherwise. Every stage draws the same R1 and each
// layer its own R2, so the start does not depend on the stage plan.
void StartTransform(const ModelConfig& config, const std::vector<LayerProblem>& problems,
                    const TransformOptions& options, bool rotate, bool smooth, MatrixD& r1,
                    std::vector<LayerTransform>& layers);

// The learned transform after `steps` learning steps (an early-stopping candidate).
struct LearnCheckpoint {
  int steps = 0;
  MatrixD r1;
  std::vector<LayerTransform> layers;
};

// report.json's per-layer entries (see StageTransform::report) of a range's transform
// (r1, layers) next to the identity and the start, and the range's objective of each.
struct StageDescription {
  nlohmann::json layers = nlohmann::json::array();
  double loss_identity = 0, loss_start = 0, loss_learned = 0;
};
StageDescription DescribeStageTransform(const ModelConfig& config, const std::vector<LayerProblem>& problems,
                                        const MatrixD& r1_start, const std::vector<LayerTransform>& start,
                                        const MatrixD& r1, const std::vector<LayerTransform>& layers,
                                        const std::vector<double>& layer_seconds, const HeroqObjectiveOptions& obj);

// The problems of layers [first, end) from `hidden`, the unquantized inputs of `first`
// (replaced by the outputs of end - 1, ready for the next range).
absl::StatusOr<std::vector<LayerProblem>> BuildLayerProblems(const ModelConfig& config,
                                                             const Checkpoint& checkpoint, int first, int end,
                                                             const SequenceBatch& samples, int batch_seqs,
                                                             MatrixF& hidden);

// The start transform of options.kind for `problems` (consecutive layers from problems[0]),
// then, for heroq, learning with `reducer` summing over the other ranges (null: these are all
// the layers). `hessian_seconds` is recorded in the report. With `checkpoints`, heroq's transform
// after every options.checkpoint_every steps and after the last is appended to it.
absl::StatusOr<StageTransform> LearnStageTransform(const ModelConfig& config,
                                                   const std::vector<LayerProblem>& problems,
                                                   const TransformOptions& options, ShareReducer* reducer,
                                                   double hessian_seconds,
                                                   std::vector<LearnCheckpoint>* checkpoints = nullptr);

// The model's transform from its ranges' (in layer order, covering every layer once).
absl::StatusOr<ModelTransform> AssembleModelTransform(const ModelConfig& config,
                                                      const std::vector<StageTransform>& stages);

// report.json's "transform" section from the ranges' parts (in layer order).
nlohmann::json MergeTransformReports(const TransformOptions& options, const std::vector<nlohmann::json>& parts);

}  // namespace caliber
