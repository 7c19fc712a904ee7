// What a quantized checkpoint records about how it was made (config.json's
// quantization_config.caliber): the method, its parameters and the calibration draw — never
// paths or URIs, so the same job run by `caliber quantize` or by the service writes the same
// bytes. report.json carries the inputs' locations.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/calib/layer_quantizer.h"
#include "core/transform/transform_options.h"
#include "nlohmann/json.hpp"

namespace caliber {

struct CalibrationDraw {
  int nsamples = 0;
  int seq_len = 0;
  uint64_t seed = 0;
  std::string sampling;  // random | first
};

nlohmann::json QuantizationMeta(const CalibrationOptions& options, const CalibrationDraw& draw);

// A job that may transform the model before quantizing it (transform_options.h): `method` as the
// user named it (heroq_gptq, while options.method is the quantizer, gptq) and "transform" with
// the kind and the options it uses. With no transform and method == options.method this is
// exactly the two-argument form, so such jobs keep their bytes.
nlohmann::json QuantizationMeta(const CalibrationOptions& options, const CalibrationDraw& draw,
                                std::string_view method, const TransformOptions& transform);

}  // namespace caliber
