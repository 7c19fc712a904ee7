// report.json of a quantization run: per module (bits, method, Hessian trace and top
// eigenvalue, relative output error ‖X(W−Ŵ)ᵀ‖²/‖XWᵀ‖² on the calibration data, Cholesky
// retries, refinement objectives, seconds) and totals.
#pragma once

#include "core/calib/model_quantizer.h"
#include "nlohmann/json.hpp"

namespace caliber {

nlohmann::json ModuleReportJson(int layer, const ModuleQuantResult& m);

// `job` (model, method, spec, calibration, ...) is stored as is under "job".
nlohmann::json BuildQuantReport(const ModelQuantResult& result, const nlohmann::json& job);

}  // namespace caliber
