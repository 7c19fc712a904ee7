#include "services/metrics/coordinator_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

namespace caliber::metrics {
namespace {

// Quantizing a model takes from seconds (tiny test models) to many hours (70B on few workers).
const prometheus::Histogram::BucketBoundaries& JobDurationBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400};
  return buckets;
}

}  // namespace

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& registry) {
  auto& jobs = prometheus::BuildGauge()
                   .Name("caliber_jobs")
                   .Help("Quantization jobs currently in each state.")
                   .Register(registry);
  auto& duration = prometheus::BuildHistogram()
                       .Name("caliber_job_duration_seconds")
                       .Help("Seconds from submission to the terminal state, by that state.")
                       .Register(registry);
  jobs_family_ = &jobs;
  job_duration_family_ = &duration;
  for (size_t i = 0; i < kStates; ++i) {
    jobs_[i] = &jobs.Add({{"state", std::string(kJobStates[i])}});
    job_duration_[i] = &duration.Add({{"state", std::string(kJobStates[i])}}, JobDurationBuckets());
  }
  auto& submissions = prometheus::BuildCounter()
                          .Name("caliber_job_submissions_total")
                          .Help("SubmitQuantJob calls, by whether the job was accepted.")
                          .Register(registry);
  submissions_accepted_ = &submissions.Add({{"outcome", "accepted"}});
  submissions_rejected_ = &submissions.Add({{"outcome", "rejected"}});
  layers_done_ = &prometheus::BuildCounter()
                      .Name("caliber_layers_quantized_total")
                      .Help("Decoder layers quantized, over all jobs and workers.")
                      .Register(registry)
                      .Add({});
  auto& workers = prometheus::BuildGauge()
                      .Name("caliber_workers")
                      .Help("Registered workers, live (heartbeating) or lost.")
                      .Register(registry);
  workers_live_ = &workers.Add({{"state", "live"}});
  workers_lost_ = &workers.Add({{"state", "lost"}});
  worker_losses_ = &prometheus::BuildCounter()
                        .Name("caliber_worker_losses_total")
                        .Help("Workers declared lost (missed heartbeats or stream broken).")
                        .Register(registry)
                        .Add({});
  reassignments_ = &prometheus::BuildCounter()
                        .Name("caliber_layer_reassignments_total")
                        .Help("Decoder layers reassigned from a lost worker to another one.")
                        .Register(registry)
                        .Add({});
  running_layers_done_ = &prometheus::BuildGauge()
                              .Name("caliber_running_layers_done")
                              .Help("Layers done, summed over the stages of running jobs.")
                              .Register(registry)
                              .Add({});
  running_layers_total_ = &prometheus::BuildGauge()
                               .Name("caliber_running_layers")
                               .Help("Layers to do, summed over the stages of running jobs.")
                               .Register(registry)
                               .Add({});
  calibration_tokens_ = &prometheus::BuildCounter()
                             .Name("caliber_job_calibration_tokens_total")
                             .Help("Calibration tokens processed for jobs, as workers report.")
                             .Register(registry)
                             .Add({});
  jobs_expired_ = &prometheus::BuildCounter()
                       .Name("caliber_jobs_expired_total")
                       .Help("Finished jobs forgotten by the retention policy (--finished-job-ttl, --max-finished-jobs).")
                       .Register(registry)
                       .Add({});
  state_write_failures_ = &prometheus::BuildCounter()
                               .Name("caliber_state_write_failures_total")
                               .Help("Job records that could not be made durable in --state-dir; the change was refused or is retried.")
                               .Register(registry)
                               .Add({});
}

void CoordinatorMetrics::SetJobs(std::string_view state, double n) {
  const size_t i = LabelIndex(state, kJobStates);
  // Family::Add is thread-safe and returns the existing series for labels seen before.
  prometheus::Gauge& gauge =
      i < kStates ? *jobs_[i] : jobs_family_->Add({{"state", std::string(kOther)}});
  gauge.Set(n);
}

void CoordinatorMetrics::JobSubmitted(bool accepted) {
  (accepted ? submissions_accepted_ : submissions_rejected_)->Increment();
}

void CoordinatorMetrics::JobFinished(std::string_view state, double seconds) {
  const size_t i = LabelIndex(state, kJobStates);
  prometheus::Histogram& histogram =
      i < kStates
          ? *job_duration_[i]
          : job_duration_family_->Add({{"state", std::string(kOther)}}, JobDurationBuckets());
  histogram.Observe(seconds);
}

void CoordinatorMetrics::LayerDone() { layers_done_->Increment(); }

void CoordinatorMetrics::SetWorkers(double live, double lost) {
  workers_live_->Set(live);
  workers_lost_->Set(lost);
}

void CoordinatorMetrics::WorkerLost() { worker_losses_->Increment(); }

// Counters only go up; prometheus-cpp ignores negative increments, and so do we, explicitly.
void CoordinatorMetrics::LayersReassigned(int n) {
  if (n > 0) reassignments_->Increment(n);
}

void CoordinatorMetrics::SetRunningLayers(double done, double total) {
  running_layers_done_->Set(done);
  running_layers_total_->Set(total);
}

void CoordinatorMetrics::JobExpired() { jobs_expired_->Increment(); }

void CoordinatorMetrics::StateWriteFailed() { state_write_failures_->Increment(); }

void CoordinatorMetrics::CalibrationTokens(double n) {
  if (n > 0) calibration_tokens_->Increment(n);
}

}  // namespace caliber::metrics
