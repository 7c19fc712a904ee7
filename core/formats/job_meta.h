// What a quantized checkpoint records about how it was made (config.json's
// quantization_config.caliber): the method, its parameters and the calibration draw — never
// paths or URIs, so the same job run by `caliber quantize` or by the service writes the same
// bytes. report.json carries the inputs' locations.
#pragma once

#include <cstdint>
#include <string>

#include "core/calib/layer_quantizer.h"
#include "nlohmann/json.hpp"

namespace caliber {

struct CalibrationDraw {
  int nsamples = 0;
  int seq_len = 0;
  uint64_t seed = 0;
  std::string sampling;  // random | first
};

nlohmann::json QuantizationMeta(const CalibrationOptions& options, const CalibrationDraw& draw);

}  // namespace caliber
