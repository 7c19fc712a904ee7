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
                      .Name("caliber_stage_layers_total")
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
