// A submitted QuantJobSpec with its defaults filled in and every field checked that can be
// checked without touching storage. Errors are InvalidArgument naming the field.
#pragma once

#include "absl/status/statusor.h"
#include "caliber/v1/quant_service.pb.h"
#include "core/calib/layer_quantizer.h"
#include "core/model/config.h"

namespace caliber::coordinator {

// Fills defaults (bits 4, group 128, nsamples 128, seq_len 256, ...) in place and validates.
absl::Status NormalizeSpec(v1::QuantJobSpec& spec);

// What the calibration engine needs, from a normalized spec.
CalibrationOptions CalibrationOptionsOf(const v1::QuantJobSpec& spec);

// Checks the spec against the model: grid/group sizes against every module's input width,
// seq_len against max_position_embeddings.
absl::Status CheckSpecAgainstModel(const v1::QuantJobSpec& spec, const ModelConfig& config);

}  // namespace caliber::coordinator
