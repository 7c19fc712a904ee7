// A worker's metrics: calibration throughput (tokens, Hessian FLOPs), per-module quantization
// time, layers done and stage progress, activation traffic, and whether it is registered with a
// live coordinator. docs/metrics.md lists them all. Thread-safe.
#pragma once

#include <array>
#include <string_view>

#include "services/metrics/label_values.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace caliber::metrics {

// One transform stage's outcome (see TransformLearned).
struct TransformSummary {
  double hessian_seconds = 0, learning_seconds = 0;
  double loss_untransformed = 0, loss_start = 0, loss_learned = 0;  // the stage's share
  // Mean over the stage's layers, by module (kLinearModules order): round-to-nearest relative
  // error without and with the transform.
  std::array<double, 7> rtn_without{}, rtn_with{};
  // Max over the stage's layers, by input (kLinearInputs order): λmax/trace and damped
  // condition number of H and of H̃.
  std::array<double, 4> top_share_h{}, top_share_ht{}, condition_h{}, condition_ht{};
};

class WorkerMetrics {
 public:
  // Registers the families on `registry` (which must outlive this object).
  explicit WorkerMetrics(prometheus::Registry& registry);

  // caliber_calibration_tokens_total: tokens run through a decoder layer for calibration.
  void CalibrationTokens(double n);
  // caliber_hessian_flops_total: floating-point operations spent accumulating Hessians.
  void HessianFlops(double f);
  // caliber_module_quant_seconds{method,module}. method: rtn|gptq|gptq_lora; module: one of
  // q_proj k_proj v_proj o_proj gate_proj up_proj down_proj, given bare or as the in-layer name
  // ("self_attn.q_proj": the part after the last '.' counts). Anything else is "other".
  void ModuleQuantSeconds(std::string_view method, std::string_view module, double s);
  // caliber_worker_layers_quantized_total.
  void LayerDone();
  // caliber_stage_layers_done / caliber_stage_layers: progress of the stage (range of
  // layers) this worker is running; 0/0 when idle.
  void SetStageProgress(double done, double total);
  // caliber_activation_bytes_total{direction=sent|received}: activations streamed between
  // pipeline stages.
  void ActivationBytes(std::string_view direction, double bytes);
  // caliber_worker_connected: 1 while registered with a live coordinator, else 0.
  void SetConnected(bool connected);
  // Transform phase: caliber_transform_seconds_total{phase=hessians|learning},
  // caliber_transform_objective{point=untransformed|start|learned},
  // caliber_transform_rtn_relative_error{module,transform=without|with},
  // caliber_transform_hessian_top_share{input,hessian=original|transformed} and
  // caliber_transform_hessian_condition{input,hessian}: the latest stage's values.
  void TransformLearned(const TransformSummary& s);

 private:
  prometheus::Counter* calibration_tokens_ = nullptr;
  prometheus::Counter* hessian_flops_ = nullptr;
  prometheus::Family<prometheus::Histogram>* module_seconds_ = nullptr;
  prometheus::Counter* layers_done_ = nullptr;
  prometheus::Gauge* stage_done_ = nullptr;
  prometheus::Gauge* stage_total_ = nullptr;
  prometheus::Family<prometheus::Counter>* activation_bytes_family_ = nullptr;
  std::array<prometheus::Counter*, kDirections.size()> activation_bytes_{};  // "other": lazily
  prometheus::Gauge* connected_ = nullptr;
  prometheus::Family<prometheus::Counter>* transform_seconds_ = nullptr;
  prometheus::Family<prometheus::Gauge>* transform_objective_ = nullptr;
  prometheus::Family<prometheus::Gauge>* transform_rtn_error_ = nullptr;
  prometheus::Family<prometheus::Gauge>* transform_top_share_ = nullptr;
  prometheus::Family<prometheus::Gauge>* transform_condition_ = nullptr;
};

}  // namespace caliber::metrics
