// HeRo-Q and its single-ingredient baselines (transform_options.h) as one model-to-model step
// before quantization, in one process: stage_transform.h over every layer.
// The result is folded into an ordinary checkpoint of the same architecture
// (WriteTransformedModel), which the usual calibration and GPTQ pipeline then quantizes.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/calib/calibration_set.h"
#include "core/io/safetensors.h"
#include "core/model/config.h"
#include "core/transform/segment_split.h"
#include "core/transform/transform_options.h"
#include "core/transform/transform_params.h"
#include "nlohmann/json.hpp"

namespace caliber {

// --method names that carry a transform: "heroq_gptq" = heroq + gptq, "heroq_gptq_lora" =
// heroq + gptq_lora. Any other method name runs with `transform_flag` (default "none").
struct MethodPlan {
  std::string quantizer;
  TransformKind transform = TransformKind::kNone;
};
absl::StatusOr<MethodPlan> PlanMethod(std::string_view method, std::string_view transform_flag);

struct TransformOutcome {
  ModelTransform transform;
  // Per layer, module and input: the round-to-nearest error without the transform, at its
  // start and learned; λmax, trace and damped condition number of H and H̃; the loss history.
  nlohmann::json report;
  double seconds = 0;
};

// The validated selection's end-to-end score (selection_objective = nll): the mean token NLL of
// each sequence of `validation` (in order) under the model quantized, on `train` only, with
// `transform` folded in. The caller owns the quantizer (cli/quantize_command.cc).
using HeldoutNllScorer = std::function<absl::StatusOr<std::vector<double>>(
    const ModelTransform& transform, const CalibrationSet& train, const CalibrationSet& validation)>;

// One fp calibration pass for the Hessians, then the transform of options.kind. `score` is
// needed only for selection_objective = nll. With the validated selection, the validation part
// is `validation_windows` when given and not empty (windows of the calibration stream that are
// not segments, calibration_set.h SelectSpareWindows; every segment then trains), else a seeded
// split of the segments (segment_split.h).
absl::StatusOr<TransformOutcome> BuildModelTransform(const ModelConfig& config, const Checkpoint& checkpoint,
                                                     const CalibrationSet& calib,
                                                     const TransformOptions& options, int batch_seqs,
                                                     const HeldoutNllScorer& score = nullptr,
                                                     const CalibrationSet* validation_windows = nullptr);

// Writes `source_dir`'s model with `transform` folded in to `out_dir` (created; float32
// tensors in one model.safetensors, config.json with untied embeddings, tokenizer files).
absl::Status WriteTransformedModel(const std::string& source_dir, const ModelConfig& config,
                                   const Checkpoint& checkpoint, const ModelTransform& transform,
                                   const std::string& out_dir);

}  // namespace caliber
