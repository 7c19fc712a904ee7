#include "core/formats/quant_report.h"

#include <string>

namespace caliber {

nlohmann::json ModuleReportJson(int layer, const ModuleQuantResult& m) {
  const QuantizedLinear& q = m.quantized;
  const QuantReport& r = q.report;
  return {
      {"layer", layer},
      {"module", std::string(LinearModuleName(m.module))},
      {"method", r.method},
      {"bits", q.bits},
      {"group_size", q.group_size},
      {"sym", q.sym},
      {"lora_rank", q.lora_rank()},
      {"shape", {q.out_features, q.in_features}},
      {"hessian_tokens", m.hessian_tokens},
      {"hessian_trace", m.hessian_trace},
      {"hessian_top_eigenvalue", m.hessian_top_eigenvalue},
      {"relative_output_error", r.relative_error},
      {"objective", r.objective_after},
      {"cholesky_retries", r.cholesky_retries},
      {"damp_used", r.damp_used},
      {"dead_columns", r.dead_columns},
      {"refine_objectives", r.refine_objectives},
      {"seconds", r.seconds},
  };
}

nlohmann::json BuildQuantReport(const ModelQuantResult& result, const nlohmann::json& job) {
  nlohmann::json modules = nlohmann::json::array();
  double error_sum = 0, worst = 0, module_seconds = 0;
  int retries = 0, count = 0;
  for (const LayerQuantResult& layer : result.layers) {
    for (const ModuleQuantResult& m : layer.modules) {
      modules.push_back(ModuleReportJson(layer.layer, m));
      error_sum += m.quantized.report.relative_error;
      worst = std::max(worst, m.quantized.report.relative_error);
      retries += m.quantized.report.cholesky_retries;
      module_seconds += m.quantized.report.seconds;
      ++count;
    }
  }
  return {
      {"job", job},
      {"modules", modules},
      {"totals",
       {{"layers", result.layers.size()},
        {"modules", count},
        {"mean_relative_output_error", count ? error_sum / count : 0.0},
        {"max_relative_output_error", worst},
        {"cholesky_retries", retries},
        {"quantizer_seconds", module_seconds},
        {"seconds", result.seconds}}},
  };
}

}  // namespace caliber
