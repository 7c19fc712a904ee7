// The calibration engine's options from the API's method message: one mapping shared by the
// coordinator (validation) and the workers (execution).
#pragma once

#include "caliber/v1/quant_service.pb.h"
#include "core/calib/layer_quantizer.h"

namespace caliber {

CalibrationOptions CalibrationOptionsFromProto(const v1::QuantMethod& method, v1::Propagation propagation,
                                               int batch_seqs);

}  // namespace caliber
