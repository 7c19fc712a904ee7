// The coordinator's state machine: jobs (QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED),
// the workers that run them, and the stage assignments between the two. The gRPC services are
// thin adapters over it. A job's record changes only by being made durable (JobStore) first:
// when the write fails (a full --state-dir) the change is refused — the RPC fails, the record
// stays what the disk holds — and an ending a job thread decided is retried by the scheduler.
// Assignments are not persisted — after a restart they are rebuilt from the jobs' durable layer
// records, so finished layers are never redone.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "caliber/v1/coordinator_state.pb.h"
#include "caliber/v1/worker_protocol.pb.h"
#include "coordinator/background_threads.h"
#include "coordinator/job_retention.h"
#include "coordinator/job_store.h"
#include "core/model/config.h"
#include "services/auth/tenants.h"
#include "services/metrics/coordinator_metrics.h"
#include "services/runtime/repeat_limiter.h"
#include "services/storage/storage.h"

namespace caliber::coordinator {

struct CoordinatorOptions {
  std::string state_dir;               // durable job records + local caches
  int heartbeat_interval_ms = 500;     // told to workers
  int worker_timeout_ms = 5000;        // no heartbeat for this long: the worker is lost
  int checkpoint_interval = 1;         // workers store activations every N layers
  int max_running_jobs = 1;            // jobs calibrating at once (each uses all its workers)
  RetentionPolicy retention;           // when finished jobs are forgotten
  // Workers registered at once (live and lost); RegisterWorker of a new id beyond it makes room
  // by forgetting the longest-silent lost worker no stage needs, else RESOURCE_EXHAUSTED.
  int max_workers = 1024;
  // A lost worker is forgotten this long after its last heartbeat, once no assignment names it
  // (its stages have moved); it registers again if it comes back.
  absl::Duration lost_worker_ttl = absl::Minutes(10);
};

class JobManager {
 public:
  JobManager(CoordinatorOptions options, storage::Storage& storage,
             metrics::CoordinatorMetrics* metrics);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Called on every job change with mu_ held (so it must be quick and must not call back into
  // this JobManager): the job and its new version. Set before Start().
  using ChangeListener = std::function<void(const v1::QuantJob& job, int64_t version)>;
  void SetChangeListener(ChangeListener listener) { on_change_ = std::move(listener); }

  // Loads the durable records and starts the scheduler.
  absl::Status Start();
  // Stops scheduling and waits for the job threads (preparation, assembly) to finish.
  void Stop();

  // QuantService. Another tenant's job is NotFound.
  absl::StatusOr<v1::QuantJob> Submit(const auth::Tenant& tenant,
                                      const v1::SubmitQuantJobRequest& request);
  // `version` (optional) receives the job's change counter, the one the listener sees.
  absl::StatusOr<v1::QuantJob> Get(const auth::Tenant& tenant, const std::string& job_id,
                                   int64_t* version = nullptr);
  absl::StatusOr<v1::ListQuantJobsResponse> List(const auth::Tenant& tenant, int page_size,
                                                 const std::string& page_token);
  absl::StatusOr<v1::QuantJob> Cancel(const auth::Tenant& tenant, const std::string& job_id);

  // CoordinatorService.
  // INVALID_ARGUMENT for an empty or oversized id or address; RESOURCE_EXHAUSTED when the
  // registry is full (options.max_workers).
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& request);
  v1::HeartbeatResponse Heartbeat(const v1::HeartbeatRequest& request);
  // Reports change durable records: Unavailable (the worker retries) when that cannot be done.
  absl::StatusOr<v1::ReportAck> LayerDone(const v1::ReportLayerDoneRequest& request);
  absl::StatusOr<v1::ReportAck> BoundaryReady(const v1::ReportBoundaryReadyRequest& request);
  absl::StatusOr<v1::ReportAck> StageEnd(const v1::ReportStageEndRequest& request);
  // Transform phase: records a stage's share of a learning round and answers with the sum
  // over the job's stages once all are in (waiting up to ~2 s for the last; else ready=false).
  // Aborted when the assignment is no longer current (the phase restarted or the job ended).
  absl::StatusOr<v1::ReduceTransformShareResponse> ReduceTransformShare(
      const v1::ReduceTransformShareRequest& request);

 private:
  struct Worker {
    std::string id;
    std::string address;
    std::string session;
    int64_t memory_bytes = 0;
    absl::Time last_seen;
    bool live = false;
  };
  struct Assignment {
    std::string id;
    std::string job_id;
    int stage = 0;
    std::string worker_id;
  };
  // An ending a job thread decided but could not make durable: retried by the scheduler while
  // the job stays RUNNING (as on disk) with no assignments.
  struct PendingEnd {
    v1::JobState state = v1::FAILED;
    absl::Status error;                          // FAILED: why
    std::optional<v1::QualityReport> report;     // SUCCEEDED: the assembled checkpoint's report
  };
  struct Job {
    v1::JobRecord record;   // what the API shows: the durable record plus unsaved phase text
    v1::JobRecord durable;  // the record as last written
    std::optional<PendingEnd> pending_end;
    int64_t version = 0;
    ModelConfig config;
    bool prepared = false;      // model cached, calibration tokens in scratch
    bool busy = false;          // a preparation or assembly thread owns the job
    // When the job's scratch is swept once more after it ended: a worker still writing when the
    // job was cancelled or failed has heard of it by then (not durable: a restart sweeps all
    // recently ended jobs).
    absl::Time sweep_at = absl::InfiniteFuture();
    std::map<int, Assignment> stage_assignment;  // stage -> current assignment
    // Transform phase (jobs with a transform, until the transformed model exists). Not
    // durable: a coordinator restart or a lost worker restarts the phase from its Hessians.
    struct Round {
      std::map<int, std::pair<double, std::vector<double>>> shares;  // stage -> (loss, R1 gradient)
      bool summed = false;
      double loss = 0;
      std::vector<double> g_r1;
    };
    std::map<int, std::string> transform_results;     // stage -> its learned transform's object
    std::map<int, std::string> transform_boundaries;  // layer -> unquantized activations after it
    std::map<int, Round> rounds;                      // learning round -> shares, then their sum
  };

  // Helpers below run with mu_ held.
  Job* FindJob(const auth::Tenant& tenant, const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The running job a worker's report about `layer` refers to, or null (ack says whether the
  // assignment is stale).
  // `written`: the objects the report names, deleted if the job has ended.
  Job* ReportedLayer(const std::string& job_id, const std::string& assignment_id, int layer,
                     v1::ReportAck& ack, std::vector<std::string> written) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes job.record durable, then bumps the version and wakes watchers. If the write fails the
  // record goes back to the last durable one and the error (ResourceExhausted for a full disk,
  // else Unavailable) says so; callers undo what they changed beside the record.
  absl::Status Changed(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StateWriteFailed(const std::string& job_id, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the job durably (and then drops its assignments, cleans up); on failure nothing changed.
  absl::Status EndJob(Job& job, v1::JobState state, const absl::Status& error = absl::OkStatus(),
                      const v1::QualityReport* report = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // For job threads and worker reports: EndJob, or a PendingEnd the scheduler retries.
  void EndOrRetry(Job& job, PendingEnd end) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailJob(Job& job, const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropAssignments(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Tick() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AssignStage(Job& job, int stage) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string PickWorker(const std::vector<std::string>& avoid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::StageAssignment BuildAssignment(const Job& job, const Assignment& a) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The next stage's live worker and assignment, for the activation push (if there is one).
  void SetDownstream(const Job& job, const Assignment& a, v1::StageAssignment& m) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PlanAndAssign(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Worker registry bounds (worker_registry.cc).
  bool WorkerInUse(const std::string& worker_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets lost workers past options_.lost_worker_ttl that no assignment names.
  void ForgetLostWorkers(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // For a new worker id: OK if there is room (maybe after forgetting the longest-silent unused
  // lost worker), else RESOURCE_EXHAUSTED.
  absl::Status MakeRoomForWorker() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets the finished jobs the retention policy expires (records and leftover scratch).
  void ExpireFinishedJobs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes objects a stale report names under a finished job's scratch (written after the
  // job's cleanup ran).
  void DiscardLateObjects(const Job& job, std::vector<std::string> uris) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration ScratchSweepDelay() const;
  bool AllLayersDone(const Job& job) const;
  // The job still has to learn and fold its transform before quantizing.
  static bool InTransformPhase(const Job& job);
  // Every stage of the transform phase to a (new) worker, from the Hessian pass on.
  void RestartTransform(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Job threads (no lock held while they do I/O).
  void RunPreparation(std::string job_id);
  void RunAssembly(std::string job_id);
  // The stages' learned transforms folded into the model, uploaded for the quantize phase.
  void RunTransformFold(std::string job_id);
  enum class CleanupScope { kScratchOnly, kScratchAndPartialOutput };
  void RunCleanup(v1::JobRecord record, CleanupScope scope);
  void SpawnCleanup(v1::JobRecord record, CleanupScope scope) {
    SpawnThread([this, record = std::move(record), scope]() { RunCleanup(record, scope); });
  }
  // For a job thread that is done with `job` (clears busy): true if the job ended meanwhile,
  // and then what the job wrote is cleaned up.
  bool EndedWhileBusy(Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SpawnThread(std::function<void()> fn) { threads_.Spawn(std::move(fn)); }
  void SchedulerLoop();
  std::string CacheDir(const std::string& job_id) const;

  const CoordinatorOptions options_;
  storage::Storage& storage_;
  metrics::CoordinatorMetrics* metrics_;
  std::unique_ptr<JobStore> store_;
  ChangeListener on_change_;  // e.g. JobWatchers::Publish

  absl::Mutex mu_;
  absl::CondVar changed_;
  std::map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, std::string> by_request_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Assignment> assignments_ ABSL_GUARDED_BY(mu_);
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_expiry_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // After a failed record write the scheduler makes no changes of its own until then (a full
  // disk is not retried 10 times a second); failures are logged at most every 10 s.
  absl::Time state_retry_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  runtime::RepeatLimiter state_log_ ABSL_GUARDED_BY(mu_){absl::Seconds(10)};

  BackgroundThreads threads_;
  std::thread scheduler_;
};

}  // namespace caliber::coordinator
