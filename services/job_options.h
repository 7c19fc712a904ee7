// The calibration engine's options from the API's method message: one mapping shared by the
// coordinator (validation) and the workers (execution).
#pragma once

#include "caliber/v1/quant_service.pb.h"
#include "core/calib/layer_quantizer.h"
#include "core/transform/transform_options.h"

namespace caliber {

// method.name may carry a transform (heroq_gptq): options.method is the quantizer's name.
CalibrationOptions CalibrationOptionsFromProto(const v1::QuantMethod& method, v1::Propagation propagation,
                                               int batch_seqs);

// The transform of a (normalized) method: kind from name/transform, learning options from
// transform_options, the objective's grid from bits/group_size/asym.
absl::StatusOr<TransformOptions> TransformOptionsFromProto(const v1::QuantMethod& method);

}  // namespace caliber
