// The validated selection's end-to-end scorer for `caliber quantize` (issue 14).
#pragma once

#include <string>

#include "core/calib/layer_quantizer.h"
#include "core/io/safetensors.h"
#include "core/model/config.h"
#include "core/transform/model_transform.h"

namespace caliber {

// --selection-objective nll (issue 14): each candidate transform is folded into the source model,
// the model is quantized with the job's method and spec on the training part only, and the
// quantized checkpoint (written to a scratch sibling of --out, removed after each candidate) is
// evaluated on the validation part (held-out segments or spare windows), one window per
// sequence, with the job's activations: exactly what `caliber eval --seq-len SEQ_LEN` computes
// on those tokens.
// The source and `options` must outlive the scorer; `scratch` must not exist.
HeldoutNllScorer MakeHeldoutNllScorer(const CalibrationOptions& options, const std::string& source_dir,
                                      const ModelConfig& source_config, const Checkpoint& source_checkpoint,
                                      const std::string& scratch);

}  // namespace caliber
