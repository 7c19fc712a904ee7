// A GPTQ-aware objective for the validated selection (validated_selection.h): what the
// quantizer that follows the transform does, not the learner's round-to-nearest proxy.
// Per layer and module m, W̃ (transformed) is quantized by GPTQ (Frantar et al. 2022) with the
// training part's transformed Hessian H̃_t, exactly as the sequential pipeline would see it
// from fp inputs, and its error E = Q(W̃) − W̃ is measured on a part's H̃:
//   Σ_m tr(E_m H̃_m E_mᵀ) / tr(W_m H_m W_mᵀ)        (the learner's first term, with GPTQ's Q).
// Measured on the held-out part this sees what the RTN proxy misses: a transform whose RTN
// error falls while GPTQ's error (which already compensates within each row) does not.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "core/quant/quant_spec.h"
#include "core/transform/heroq_objective.h"

namespace caliber {

struct GptqLayerObjective {
  double train = 0;       // on the training part's H̃
  double validation = 0;  // on the held-out part's H̃
};

// One entry per layer; `train` and `validation` are the same layers' problems of each part.
absl::StatusOr<std::vector<GptqLayerObjective>> GptqLayerObjectives(const ModelConfig& config,
                                                                    const std::vector<LayerProblem>& train,
                                                                    const std::vector<LayerProblem>& validation,
                                                                    const MatrixD& r1,
                                                                    const std::vector<LayerTransform>& layers,
                                                                    const QuantSpec& spec);

}  // namespace caliber
