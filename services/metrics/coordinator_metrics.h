// The coordinator's metrics: jobs by state, submissions, job durations, layers quantized, worker
// liveness and reassignments, progress of running jobs. docs/metrics.md lists them all. Every
// method is thread-safe and cheap (atomic updates on series created up front).
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

class CoordinatorMetrics {
 public:
  // Registers the families on `registry` (which must outlive this object). Constructing twice on
  // one registry shares the same series (prometheus-cpp merges families of equal name).
  explicit CoordinatorMetrics(prometheus::Registry& registry);

  // caliber_jobs{state}: jobs currently in `state` (queued|running|succeeded|failed|cancelled;
  // case-insensitive, anything else is "other").
  void SetJobs(std::string_view state, double n);
  // caliber_job_submissions_total{outcome=accepted|rejected}.
  void JobSubmitted(bool accepted);
  // caliber_job_duration_seconds{state}: submission to terminal state.
  void JobFinished(std::string_view state, double seconds);
  // caliber_layers_quantized_total.
  void LayerDone();
  // caliber_workers{state=live|lost}.
  void SetWorkers(double live, double lost);
  // caliber_worker_losses_total.
  void WorkerLost();
  // caliber_layer_reassignments_total (layers of a lost worker's stage handed to another one).
  void LayersReassigned(int n);
  // caliber_running_layers_done / caliber_running_layers: stage progress summed over the
  // running jobs (no per-job labels: job ids are unbounded).
  void SetRunningLayers(double done, double total);
  // caliber_job_calibration_tokens_total: calibration tokens processed for jobs, as reported by
  // workers.
  void CalibrationTokens(double n);
  // caliber_jobs_expired_total: finished jobs forgotten by the retention policy.
  void JobExpired();
  // caliber_state_write_failures_total: job records that could not be made durable in
  // --state-dir (full disk, I/O error); the change they carried was refused or is retried.
  void StateWriteFailed();

 private:
  // Series of the known states exist from the start (reading 0); "other" appears when used.
  static constexpr size_t kStates = kJobStates.size();
  prometheus::Family<prometheus::Gauge>* jobs_family_ = nullptr;
  prometheus::Family<prometheus::Histogram>* job_duration_family_ = nullptr;
  std::array<prometheus::Gauge*, kStates> jobs_{};
  std::array<prometheus::Histogram*, kStates> job_duration_{};
  prometheus::Counter* submissions_accepted_ = nullptr;
  prometheus::Counter* submissions_rejected_ = nullptr;
  prometheus::Counter* layers_done_ = nullptr;
  prometheus::Gauge* workers_live_ = nullptr;
  prometheus::Gauge* workers_lost_ = nullptr;
  prometheus::Counter* worker_losses_ = nullptr;
  prometheus::Counter* reassignments_ = nullptr;
  prometheus::Gauge* running_layers_done_ = nullptr;
  prometheus::Gauge* running_layers_total_ = nullptr;
  prometheus::Counter* calibration_tokens_ = nullptr;
  prometheus::Counter* jobs_expired_ = nullptr;
  prometheus::Counter* state_write_failures_ = nullptr;
};

}  // namespace caliber::metrics
