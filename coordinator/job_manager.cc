// JobManager: lifecycle, the QuantService side (submit, get, list, cancel, watch) and the
// state changes every other part goes through (Changed, EndJob, FailJob). Scheduling lives in
// job_scheduler.cc, worker reports in worker_reports.cc, the job threads in job_tasks.cc.
#include "coordinator/job_manager.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "coordinator/checkpoint_assembler.h"
#include "coordinator/job_manager_internal.h"
#include "coordinator/job_preparer.h"
#include "coordinator/job_retention.h"
#include "coordinator/job_spec.h"
#include "coordinator/request_limits.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"

namespace caliber::coordinator {
namespace fs = std::filesystem;
namespace {

using google::protobuf::util::TimeUtil;

std::string ScratchUri(const std::string& output_uri, const std::string& job_id) {
  std::string base = output_uri;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return absl::StrCat(base, ".caliber-work-", job_id);
}

// Keys that make a request the same job (labels and priority included).
bool SameSpec(const v1::QuantJobSpec& a, const v1::QuantJobSpec& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

}  // namespace
JobManager::JobManager(CoordinatorOptions options, storage::Storage& storage,
                       metrics::CoordinatorMetrics* metrics)
    : options_(std::move(options)), storage_(storage), metrics_(metrics) {}

JobManager::~JobManager() { Stop(); }

std::string JobManager::CacheDir(const std::string& job_id) const {
  return (fs::path(options_.state_dir) / "cache" / job_id).string();
}

absl::Status JobManager::Start() {
  absl::StatusOr<JobStore> store = JobStore::Open(options_.state_dir);
  if (!store.ok()) return store.status();
  store_ = std::make_unique<JobStore>(*std::move(store));
  absl::StatusOr<std::vector<v1::JobRecord>> records = store_->LoadAll();
  if (!records.ok()) return records.status();
  {
    absl::MutexLock lock(&mu_);
    for (v1::JobRecord& r : *records) {
      next_seq_ = std::max(next_seq_, r.submit_seq() + 1);
      const std::string id = r.job().job_id();
      if (!r.job().request_id().empty()) by_request_[{r.job().tenant(), r.job().request_id()}] = id;
      Job& job = jobs_[id];
      job.record = std::move(r);
      job.durable = job.record;
      // A running job's assignments died with the old process; its stages are reassigned
      // from the durable layer records once it is prepared again.
      if (job.record.job().state() == v1::RUNNING) {
        for (v1::StageProgress& st : *job.record.mutable_job()->mutable_stages()) st.set_worker_id("");
      }
      // A job that ended shortly before the restart may have lost its final sweep.
      if (IsTerminal(job.record.job().state()) &&
          absl::Now() - absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(job.record.job().end_time())) <
              absl::Hours(1)) {
        job.sweep_at = absl::Now() + ScratchSweepDelay();
      }
    }
    UpdateGauges();
  }
  scheduler_ = std::thread([this] { SchedulerLoop(); });
  return absl::OkStatus();
}

void JobManager::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    changed_.SignalAll();
  }
  if (scheduler_.joinable()) scheduler_.join();
  threads_.JoinAll();
}

void JobManager::SchedulerLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    Tick();
    changed_.WaitWithTimeout(&mu_, absl::Milliseconds(100));
  }
}

// ---- QuantService ----------------------------------------------------------------------

absl::StatusOr<v1::QuantJob> JobManager::Submit(const auth::Tenant& tenant,
                                                const v1::SubmitQuantJobRequest& request) {
  auto reject = [this](absl::Status s) {
    if (metrics_) metrics_->JobSubmitted(false);
    return s;
  };
  v1::QuantJobSpec spec = request.spec();
  if (absl::Status s = CheckIdentifier("request_id", request.request_id(), kMaxRequestIdBytes); !s.ok()) {
    return reject(s);
  }
  if (absl::Status s = NormalizeSpec(spec); !s.ok()) return reject(s);
  std::vector<std::pair<std::string, bool>> uris = {{spec.model_uri(), false},
                                                    {spec.calibration().uri(), false},
                                                    {spec.output_uri(), true}};
  if (spec.has_evaluation()) uris.push_back({spec.evaluation().uri(), false});
  for (const auto& [uri, write] : uris) {
    if (absl::Status s = storage_.CheckUri(uri); !s.ok()) return reject(s);
    if (write ? !tenant.CanWrite(uri) : !tenant.CanRead(uri)) {
      return reject(absl::PermissionDeniedError(absl::StrCat(
          "tenant '", tenant.name, "' may not ", write ? "write " : "read ", uri)));
    }
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
    if (!request.request_id().empty()) {
      auto it = by_request_.find({tenant.name, request.request_id()});
      if (it != by_request_.end()) {
        const Job& existing = jobs_.at(it->second);
        if (!SameSpec(existing.record.job().spec(), spec)) {
          return reject(absl::AlreadyExistsError(absl::StrCat(
              "request_id '", request.request_id(), "' was used for a different job (", it->second, ")")));
        }
        return existing.record.job();
      }
    }
  }

  // Inputs: the model (config and shard headers), the data, the output location.
  const std::string probe_dir = (fs::path(options_.state_dir) / "tmp" / internal::RandomId("probe-")).string();
  absl::StatusOr<ModelConfig> config = InspectModel(storage_, spec.model_uri(), probe_dir);
  std::error_code ec;
  fs::remove_all(probe_dir, ec);
  if (!config.ok()) return reject(config.status());
  if (absl::Status s = CheckSpecAgainstModel(spec, *config); !s.ok()) return reject(s);
  auto check_data = [&](const std::string& uri, const char* what) -> absl::Status {
    absl::StatusOr<int64_t> size = storage_.Size(uri);
    if (absl::IsNotFound(size.status())) {
      return absl::NotFoundError(absl::StrCat(what, " ", uri, " does not exist"));
    }
    if (!size.ok()) return size.status();
    if (*size == 0) return absl::InvalidArgumentError(absl::StrCat(what, " ", uri, " is empty"));
    return absl::OkStatus();
  };
  if (absl::Status s = check_data(spec.calibration().uri(), "calibration data"); !s.ok()) return reject(s);
  if (spec.has_evaluation()) {
    if (absl::Status s = check_data(spec.evaluation().uri(), "evaluation data"); !s.ok()) return reject(s);
  }
  absl::StatusOr<bool> exists = OutputExists(storage_, spec.output_uri());
  if (!exists.ok()) return reject(exists.status());
  if (*exists) return reject(absl::AlreadyExistsError(absl::StrCat("output ", spec.output_uri(), " already exists")));
  if (absl::Status s = storage_.CheckWritable(spec.output_uri()); !s.ok()) return reject(s);

  absl::MutexLock lock(&mu_);
  if (!request.request_id().empty()) {  // a concurrent twin may have won the race
    auto it = by_request_.find({tenant.name, request.request_id()});
    if (it != by_request_.end()) return jobs_.at(it->second).record.job();
  }
  for (const auto& [id, other] : jobs_) {
    if (!IsTerminal(other.record.job().state()) && other.record.job().spec().output_uri() == spec.output_uri()) {
      return reject(absl::AlreadyExistsError(
          absl::StrCat("output ", spec.output_uri(), " is being written by job ", id)));
    }
  }
  const std::string id = internal::RandomId("job-");
  Job& job = jobs_[id];
  v1::QuantJob& j = *job.record.mutable_job();
  j.set_job_id(id);
  j.set_tenant(tenant.name);
  j.set_request_id(request.request_id());
  *j.mutable_spec() = spec;
  j.set_state(v1::QUEUED);
  j.set_phase("queued");
  j.set_layers_total(config->num_hidden_layers);
  for (int l = 0; l < config->num_hidden_layers; ++l) j.add_layer_done(false);
  *j.mutable_create_time() = internal::NowTimestamp();
  job.record.set_scratch_uri(ScratchUri(spec.output_uri(), id));
  job.record.set_submit_seq(next_seq_++);
  for (int l = 0; l < config->num_hidden_layers; ++l) job.record.add_layers();
  job.config = *config;
  if (absl::Status s = Changed(job); !s.ok()) {  // not acknowledged, so not kept
    jobs_.erase(id);
    return reject(s);
  }
  if (!request.request_id().empty()) by_request_[{tenant.name, request.request_id()}] = id;
  if (metrics_) metrics_->JobSubmitted(true);
  return j;
}

JobManager::Job* JobManager::FindJob(const auth::Tenant& tenant, const std::string& job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.record.job().tenant() != tenant.name) return nullptr;
  return &it->second;
}

absl::StatusOr<v1::QuantJob> JobManager::Get(const auth::Tenant& tenant, const std::string& job_id,
                                             int64_t* version) {
  if (absl::Status s = CheckIdentifier("job_id", job_id, kMaxJobIdBytes); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  Job* job = FindJob(tenant, job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job ", job_id));
  if (version != nullptr) *version = job->version;
  return job->record.job();
}

absl::StatusOr<v1::ListQuantJobsResponse> JobManager::List(const auth::Tenant& tenant, int page_size,
                                                           const std::string& page_token) {
  if (page_size < 0) return absl::InvalidArgumentError("page_size must be >= 0");
  if (page_size == 0) page_size = 100;
  page_size = std::min(page_size, 1000);
  int64_t offset = 0;
  if (absl::Status s = CheckIdentifier("page_token", page_token, kMaxPageTokenBytes); !s.ok()) return s;
  if (!page_token.empty() && (!absl::SimpleAtoi(page_token, &offset) || offset < 0)) {
    return absl::InvalidArgumentError("page_token is not one this service returned");
  }
  absl::MutexLock lock(&mu_);
  std::vector<const Job*> mine;
  for (const auto& [id, job] : jobs_) {
    if (job.record.job().tenant() == tenant.name) mine.push_back(&job);
  }
  std::sort(mine.begin(), mine.end(),
            [](const Job* a, const Job* b) { return a->record.submit_seq() > b->record.submit_seq(); });
  v1::ListQuantJobsResponse out;
  // A page also ends before it outgrows a default client's receive limit (a job is far smaller:
  // its spec, messages and per-layer fields are bounded).
  size_t bytes = 0;
  for (int64_t i = offset; i < static_cast<int64_t>(mine.size()) && out.jobs_size() < page_size; ++i) {
    const v1::QuantJob& job = mine[static_cast<size_t>(i)]->record.job();
    const size_t size = job.ByteSizeLong() + 8;  // + the field's tag and length
    if (out.jobs_size() > 0 && bytes + size > kMaxListPageBytes) break;
    bytes += size;
    *out.add_jobs() = job;
  }
  if (offset + out.jobs_size() < static_cast<int64_t>(mine.size())) {
    out.set_next_page_token(std::to_string(offset + out.jobs_size()));
  }
  return out;
}

absl::StatusOr<v1::QuantJob> JobManager::Cancel(const auth::Tenant& tenant, const std::string& job_id) {
  if (absl::Status s = CheckIdentifier("job_id", job_id, kMaxJobIdBytes); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  Job* job = FindJob(tenant, job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job ", job_id));
  if (!IsTerminal(job->record.job().state())) {
    if (absl::Status s = EndJob(*job, v1::CANCELLED); !s.ok()) return s;  // still running, as on disk
  }
  return job->record.job();
}

// ---- state changes ----------------------------------------------------------------------

absl::Status JobManager::Changed(Job& job) {
  if (absl::Status s = store_->Save(job.record); !s.ok()) {
    const std::string id = job.record.job().job_id();
    job.record = job.durable;  // what the API shows is what a restart would find
    return StateWriteFailed(id, s);
  }
  job.durable = job.record;
  ++job.version;
  UpdateGauges();
  changed_.SignalAll();
  if (on_change_) on_change_(job.record.job(), job.version);
  return absl::OkStatus();
}

absl::Status JobManager::StateWriteFailed(const std::string& job_id, const absl::Status& status) {
  if (metrics_) metrics_->StateWriteFailed();
  const absl::Time now = absl::Now();
  state_retry_at_ = now + absl::Seconds(1);
  int suppressed = 0;
  if (state_log_.ShouldLog("state write", suppressed, now)) {  // one line per 10 s, however many jobs
    std::fprintf(stderr,
                 "caliber-coordinator: cannot persist job %s (and %d more record write(s) since the last line): %s\n",
                 job_id.c_str(), suppressed, status.ToString().c_str());
  }
  const std::string message =
      absl::StrCat("cannot record job ", job_id, " durably in the state directory: ", status.message());
  return absl::IsResourceExhausted(status) ? absl::ResourceExhaustedError(message) : absl::UnavailableError(message);
}

void JobManager::UpdateGauges() {
  if (metrics_ == nullptr) return;
  std::map<v1::JobState, int> counts;
  double done = 0, total = 0;
  for (const auto& [id, job] : jobs_) {
    ++counts[job.record.job().state()];
    if (job.record.job().state() == v1::RUNNING) {
      done += job.record.job().layers_done();
      total += job.record.job().layers_total();
    }
  }
  // Metric labels take the state names case-insensitively (RUNNING -> running).
  for (const v1::JobState s : {v1::QUEUED, v1::RUNNING, v1::SUCCEEDED, v1::FAILED, v1::CANCELLED}) {
    metrics_->SetJobs(v1::JobState_Name(s), counts[s]);
  }
  metrics_->SetRunningLayers(done, total);
  int live = 0, lost = 0;
  for (const auto& [id, w] : workers_) (w.live ? live : lost)++;
  metrics_->SetWorkers(live, lost);
}

absl::Status JobManager::EndJob(Job& job, v1::JobState state, const absl::Status& error,
                                const v1::QualityReport* report) {
  v1::QuantJob& j = *job.record.mutable_job();
  if (!error.ok()) {
    j.set_error_code(static_cast<int>(error.code()));
    j.set_error_message(BoundedMessage(error.message()));
  }
  if (report != nullptr) *j.mutable_report() = *report;
  j.set_state(state);
  j.set_phase("done");
  *j.mutable_end_time() = internal::NowTimestamp();
  for (v1::StageProgress& st : *j.mutable_stages()) st.set_worker_id("");  // no worker holds it now
  if (absl::Status s = Changed(job); !s.ok()) return s;
  job.pending_end.reset();
  DropAssignments(job);
  if (metrics_) {
    metrics_->JobFinished(v1::JobState_Name(state),
                          TimeUtil::DurationToNanoseconds(j.end_time() - j.create_time()) / 1e9);
  }
  job.sweep_at = absl::Now() + ScratchSweepDelay();
  if (!job.busy) SpawnCleanup(job.record, CleanupScope::kScratchAndPartialOutput);  // else EndedWhileBusy does
  return absl::OkStatus();
}

void JobManager::EndOrRetry(Job& job, PendingEnd end) {
  if (IsTerminal(job.record.job().state())) return;
  if (EndJob(job, end.state, end.error, end.report ? &*end.report : nullptr).ok()) return;
  // Not durable: the job stays RUNNING, as on disk and as a restart would find it. Its workers
  // stop (their assignments go) and the scheduler retries the ending.
  job.pending_end = std::move(end);
  DropAssignments(job);
}

void JobManager::DropAssignments(Job& job) {
  for (const auto& [stage, a] : job.stage_assignment) assignments_.erase(a.id);
  job.stage_assignment.clear();
}

absl::Duration JobManager::ScratchSweepDelay() const {
  // Workers learn at their next heartbeat that a job ended, and a worker that stopped
  // heartbeating is lost after worker_timeout_ms: by then nobody writes for the job.
  return std::max(absl::Seconds(5), absl::Milliseconds(2 * options_.worker_timeout_ms + options_.heartbeat_interval_ms));
}

void JobManager::ExpireFinishedJobs() {
  std::vector<FinishedJob> finished;
  for (const auto& [id, job] : jobs_) {
    const v1::QuantJob& j = job.record.job();
    if (!IsTerminal(j.state()) || job.busy) continue;
    finished.push_back({id, j.tenant(), absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(j.end_time())),
                        job.record.submit_seq()});
  }
  bool expired = false;
  for (const std::string& id : ExpiredJobs(std::move(finished), options_.retention, absl::Now())) {
    Job& job = jobs_.at(id);
    // The record goes first: if it cannot be removed the job stays listed and is retried,
    // rather than coming back after a restart.
    if (absl::Status s = store_->Remove(id); !s.ok()) {
      std::fprintf(stderr, "caliber-coordinator: cannot remove expired job %s: %s\n", id.c_str(), s.ToString().c_str());
      continue;
    }
    v1::JobRecord copy = std::move(job.record);
    if (auto it = by_request_.find({copy.job().tenant(), copy.job().request_id()});
        it != by_request_.end() && it->second == id) {
      by_request_.erase(it);
    }
    jobs_.erase(id);
    SpawnCleanup(std::move(copy), CleanupScope::kScratchOnly);
    if (metrics_) metrics_->JobExpired();
    expired = true;
  }
  if (expired) UpdateGauges();
}

void JobManager::DiscardLateObjects(const Job& job, std::vector<std::string> uris) {
  std::vector<std::string> mine;
  const std::string prefix = job.record.scratch_uri() + "/";
  for (std::string& uri : uris) {
    if (!uri.empty() && uri.rfind(prefix, 0) == 0) mine.push_back(std::move(uri));
  }
  if (mine.empty()) return;
  SpawnThread([this, mine]() {
    for (const std::string& uri : mine) (void)storage_.Delete(uri);
  });
}

void JobManager::FailJob(Job& job, const absl::Status& status) {
  EndOrRetry(job, PendingEnd{v1::FAILED, status, std::nullopt});
}

}  // namespace caliber::coordinator
