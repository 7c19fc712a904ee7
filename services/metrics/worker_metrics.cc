#include "services/metrics/worker_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

namespace caliber::metrics {
namespace {

// One module's quantization: milliseconds (RTN, small models) to minutes (GPTQ with refinement
// on a 28672-wide down_proj).
const prometheus::Histogram::BucketBoundaries& ModuleSecondsBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300, 600};
  return buckets;
}

}  // namespace

WorkerMetrics::WorkerMetrics(prometheus::Registry& registry) {
  calibration_tokens_ = &prometheus::BuildCounter()
                             .Name("caliber_calibration_tokens_total")
                             .Help("Calibration tokens run through decoder layers.")
                             .Register(registry)
                             .Add({});
  hessian_flops_ = &prometheus::BuildCounter()
                        .Name("caliber_hessian_flops_total")
                        .Help("Floating-point operations spent accumulating Hessians.")
                        .Register(registry)
                        .Add({});
  // Series appear on first use: methods x modules would be 28 idle histograms up front.
  module_seconds_ = &prometheus::BuildHistogram()
                         .Name("caliber_module_quant_seconds")
                         .Help("Seconds to quantize one linear module, by method and module.")
                         .Register(registry);
  layers_done_ = &prometheus::BuildCounter()
                      .Name("caliber_worker_layers_quantized_total")
                      .Help("Decoder layers this worker quantized.")
                      .Register(registry)
                      .Add({});
  stage_done_ = &prometheus::BuildGauge()
                     .Name("caliber_stage_layers_done")
                     .Help("Layers done in the stage this worker is running.")
                     .Register(registry)
                     .Add({});
  stage_total_ = &prometheus::BuildGauge()
                      .Name("caliber_stage_layers")
                      .Help("Layers in the stage this worker is running.")
                      .Register(registry)
                      .Add({});
  auto& bytes = prometheus::BuildCounter()
                    .Name("caliber_activation_bytes_total")
                    .Help("Activation bytes streamed between pipeline stages, by direction.")
                    .Register(registry);
  activation_bytes_family_ = &bytes;
  for (size_t i = 0; i < activation_bytes_.size(); ++i) {
    activation_bytes_[i] = &bytes.Add({{"direction", std::string(kDirections[i])}});
  }
  connected_ = &prometheus::BuildGauge()
                    .Name("caliber_worker_connected")
                    .Help("1 while registered with a live coordinator, else 0.")
                    .Register(registry)
                    .Add({});
  transform_seconds_ = &prometheus::BuildCounter()
                            .Name("caliber_transform_seconds_total")
                            .Help("Seconds of transform phases: Hessian pass and learning.")
                            .Register(registry);
  transform_objective_ = &prometheus::BuildGauge()
                              .Name("caliber_transform_objective")
                              .Help("The latest transform stage's share of the HeRo-Q objective.")
                              .Register(registry);
  transform_rtn_error_ = &prometheus::BuildGauge()
                              .Name("caliber_transform_rtn_relative_error")
                              .Help("Round-to-nearest relative error without/with the transform, mean over the "
                                    "latest transform stage's layers.")
                              .Register(registry);
  transform_top_share_ = &prometheus::BuildGauge()
                              .Name("caliber_transform_hessian_top_share")
                              .Help("Largest eigenvalue over trace of H (original) and H~ (transformed), max over "
                                    "the latest transform stage's layers.")
                              .Register(registry);
  transform_condition_ = &prometheus::BuildGauge()
                              .Name("caliber_transform_hessian_condition")
                              .Help("Damped condition number of H and H~, max over the latest transform stage's "
                                    "layers.")
                              .Register(registry);
}

void WorkerMetrics::TransformLearned(const TransformSummary& s) {
  transform_seconds_->Add({{"phase", "hessians"}}).Increment(s.hessian_seconds);
  transform_seconds_->Add({{"phase", "learning"}}).Increment(s.learning_seconds);
  transform_objective_->Add({{"point", "untransformed"}}).Set(s.loss_untransformed);
  transform_objective_->Add({{"point", "start"}}).Set(s.loss_start);
  transform_objective_->Add({{"point", "learned"}}).Set(s.loss_learned);
  for (size_t m = 0; m < kLinearModules.size(); ++m) {
    const std::string module(kLinearModules[m]);
    transform_rtn_error_->Add({{"module", module}, {"transform", "without"}}).Set(s.rtn_without[m]);
    transform_rtn_error_->Add({{"module", module}, {"transform", "with"}}).Set(s.rtn_with[m]);
  }
  for (size_t i = 0; i < kLinearInputs.size(); ++i) {
    const std::string input(kLinearInputs[i]);
    transform_top_share_->Add({{"input", input}, {"hessian", "original"}}).Set(s.top_share_h[i]);
    transform_top_share_->Add({{"input", input}, {"hessian", "transformed"}}).Set(s.top_share_ht[i]);
    transform_condition_->Add({{"input", input}, {"hessian", "original"}}).Set(s.condition_h[i]);
    transform_condition_->Add({{"input", input}, {"hessian", "transformed"}}).Set(s.condition_ht[i]);
  }
}

void WorkerMetrics::CalibrationTokens(double n) {
  if (n > 0) calibration_tokens_->Increment(n);
}

void WorkerMetrics::HessianFlops(double f) {
  if (f > 0) hessian_flops_->Increment(f);
}

void WorkerMetrics::ModuleQuantSeconds(std::string_view method, std::string_view module, double s) {
  const size_t dot = module.rfind('.');
  if (dot != std::string_view::npos) module.remove_prefix(dot + 1);
  // Family::Add returns the existing series for labels seen before.
  module_seconds_
      ->Add({{"method", std::string(CanonicalLabel(method, kQuantMethods))},
             {"module", std::string(CanonicalLabel(module, kLinearModules))}},
            ModuleSecondsBuckets())
      .Observe(s);
}

void WorkerMetrics::LayerDone() { layers_done_->Increment(); }

void WorkerMetrics::SetStageProgress(double done, double total) {
  stage_done_->Set(done);
  stage_total_->Set(total);
}

void WorkerMetrics::ActivationBytes(std::string_view direction, double bytes) {
  if (bytes <= 0) return;
  const size_t i = LabelIndex(direction, kDirections);
  prometheus::Counter& counter =
      i < activation_bytes_.size()
          ? *activation_bytes_[i]
          : activation_bytes_family_->Add({{"direction", std::string(kOther)}});
  counter.Increment(bytes);
}

void WorkerMetrics::SetConnected(bool connected) { connected_->Set(connected ? 1 : 0); }

}  // namespace caliber::metrics
