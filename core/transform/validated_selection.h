// The validated selection of the transform phase (issue 14; options.selection = validated).
//
// A learned transform fitted to the calibration segments can lower their objective and still
// generalize worse than no transform at all. So the segments are split (segment_split.h): the
// transform is learned on the training part, and the candidates
//   identity (RMSNorm folding only; always a candidate),
//   the kind's fixed transforms — heroq: QuaRot (Hadamard R1/R2), SmoothQuant diagonals at
//     α ∈ {0.25, 0.5, 0.75, options.smooth_alpha}, Hadamard + SmoothQuant at options.smooth_alpha;
//     quarot: QuaRot; smoothquant: SmoothQuant at options.smooth_alpha,
//   heroq's learned transform after every options.checkpoint_every steps and after the last
//     (early stopping),
// are compared by the same layer-wise objective the learner minimizes (heroq_objective.h), or
// with options.selection_objective = gptq by GPTQ's output error (gptq_validation.h), summed
// over the layers, on the held-out part. The lowest wins (ties: the earlier candidate in
// the order above, so identity wins every tie). Since identity is a candidate, the chosen
// transform's validation objective is never above identity's.
//
// Everything is a function of the problems and the options: deterministic.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/transform/stage_transform.h"

namespace caliber {

struct TransformCandidate {
  std::string name;  // "identity", "quarot", "smoothquant_a0.25", "hadamard_smoothquant", "heroq_step40"
  MatrixD r1;
  std::vector<LayerTransform> layers;
};

// The objective of `layers` (one per problem, in order) at `r1`, per layer.
std::vector<double> LayerObjectives(const ModelConfig& config, const std::vector<LayerProblem>& problems,
                                    const MatrixD& r1, const std::vector<LayerTransform>& layers,
                                    const HeroqObjectiveOptions& objective);

// The end-to-end score of one candidate (selection_objective = nll): the mean token NLL of each
// held-out segment under the model quantized with it. Called once per candidate, in candidate
// order; the candidates are then chosen by the margin rule (heldout_margin.h).
using CandidateScorer = std::function<absl::StatusOr<std::vector<double>>(const TransformCandidate&)>;

// Learns on `train`, chooses on `validation` (the same layers, from the held-out segments).
// The result is the chosen candidate; its report is LearnStageTransform's with "loss.learned"
// and "layers" describing the chosen transform (on the training problems), each layer
// carrying "objective": {"train", "validation"} of the chosen one, plus "selection":
// {"chosen", "candidates": [{"name", "train", "validation", "layers": [{"layer", "train",
// "validation"}]}], "checkpoint_every"}. With selection_objective = nll the candidates are
// chosen by `score` (required then) under options.selection_margin; each carries "heldout_nll"
// (the mean), "heldout_segment_nll", "vs_identity": {"mean", "standard_error"} (identity's
// is 0) and "nll_seconds" too, and "selection" has "margin"; "train"/"validation" stay the
// learner's objective, for comparison.
absl::StatusOr<StageTransform> SelectValidatedTransform(const ModelConfig& config,
                                                        const std::vector<LayerProblem>& train,
                                                        const std::vector<LayerProblem>& validation,
                                                        const TransformOptions& options, double hessian_seconds,
                                                        const CandidateScorer& score = nullptr);

}  // namespace caliber
