#include "coordinator/job_manager.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "coordinator/checkpoint_assembler.h"
#include "coordinator/job_preparer.h"
#include "coordinator/job_spec.h"
#include "coordinator/shard_planner.h"
#include "core/transform/model_transform.h"
#include "core/transform/stage_transform.h"
#include "core/transform/transform_codec.h"
#include "services/job_options.h"
#include "services/scratch_layout.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"

namespace caliber::coordinator {
namespace fs = std::filesystem;
namespace {

using google::protobuf::util::TimeUtil;

std::string RandomId(std::string_view prefix) {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  return absl::StrCat(std::string(prefix), absl::Hex(rng(), absl::kZeroPad16));
}

google::protobuf::Timestamp Now() { return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now())); }

bool Terminal(v1::JobState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}

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
      by_request_[{r.job().tenant(), r.job().request_id()}] = id;
      Job& job = jobs_[id];
      job.record = std::move(r);
      // A running job's assignments died with the old process; its stages are reassigned
      // from the durable layer records once it is prepared again.
      if (job.record.job().state() == v1::RUNNING) {
        for (v1::StageProgress& st : *job.record.mutable_job()->mutable_stages()) st.set_worker_id("");
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
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&threads_mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
}

void JobManager::SpawnThread(std::function<void()> fn) {
  absl::MutexLock lock(&threads_mu_);
  threads_.emplace_back(std::move(fn));
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
  if (request.request_id().size() > 256) return reject(absl::InvalidArgumentError("request_id: at most 256 bytes"));
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
  const std::string probe_dir = (fs::path(options_.state_dir) / "tmp" / RandomId("probe-")).string();
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

  absl::MutexLock lock(&mu_);
  if (!request.request_id().empty()) {  // a concurrent twin may have won the race
    auto it = by_request_.find({tenant.name, request.request_id()});
    if (it != by_request_.end()) return jobs_.at(it->second).record.job();
  }
  for (const auto& [id, other] : jobs_) {
    if (!Terminal(other.record.job().state()) && other.record.job().spec().output_uri() == spec.output_uri()) {
      return reject(absl::AlreadyExistsError(
          absl::StrCat("output ", spec.output_uri(), " is being written by job ", id)));
    }
  }
  const std::string id = RandomId("job-");
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
  *j.mutable_create_time() = Now();
  job.record.set_scratch_uri(ScratchUri(spec.output_uri(), id));
  job.record.set_submit_seq(next_seq_++);
  for (int l = 0; l < config->num_hidden_layers; ++l) job.record.add_layers();
  job.config = *config;
  if (!request.request_id().empty()) by_request_[{tenant.name, request.request_id()}] = id;
  Changed(job);
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
  for (int64_t i = offset; i < static_cast<int64_t>(mine.size()) && out.jobs_size() < page_size; ++i) {
    *out.add_jobs() = mine[static_cast<size_t>(i)]->record.job();
  }
  if (offset + out.jobs_size() < static_cast<int64_t>(mine.size())) {
    out.set_next_page_token(std::to_string(offset + out.jobs_size()));
  }
  return out;
}

absl::StatusOr<v1::QuantJob> JobManager::Cancel(const auth::Tenant& tenant, const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Job* job = FindJob(tenant, job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job ", job_id));
  if (!Terminal(job->record.job().state())) EndJob(*job, v1::CANCELLED);
  return job->record.job();
}

absl::StatusOr<v1::QuantJob> JobManager::WaitForUpdate(const auth::Tenant& tenant, const std::string& job_id,
                                                       int64_t after_version, absl::Time deadline,
                                                       int64_t* version) {
  absl::MutexLock lock(&mu_);
  while (true) {
    Job* job = FindJob(tenant, job_id);
    if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job ", job_id));
    if (job->version > after_version || absl::Now() >= deadline || stopping_) {
      *version = job->version;
      return job->record.job();
    }
    changed_.WaitWithDeadline(&mu_, deadline);
  }
}

// ---- state changes ----------------------------------------------------------------------

void JobManager::Changed(Job& job) {
  ++job.version;
  if (absl::Status s = store_->Save(job.record); !s.ok()) {
    // The in-memory state stays authoritative; the next change retries the write.
    std::fprintf(stderr, "caliber-coordinator: cannot persist job %s: %s\n",
                 job.record.job().job_id().c_str(), s.ToString().c_str());
  }
  UpdateGauges();
  changed_.SignalAll();
  if (on_change_) on_change_(job.record.job(), job.version);
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

void JobManager::EndJob(Job& job, v1::JobState state) {
  v1::QuantJob& j = *job.record.mutable_job();
  j.set_state(state);
  j.set_phase("done");
  *j.mutable_end_time() = Now();
  for (const auto& [stage, a] : job.stage_assignment) assignments_.erase(a.id);
  job.stage_assignment.clear();
  if (metrics_) {
    metrics_->JobFinished(v1::JobState_Name(state),
                          TimeUtil::DurationToNanoseconds(j.end_time() - j.create_time()) / 1e9);
  }
  Changed(job);
  if (!job.busy) {
    v1::JobRecord copy = job.record;
    SpawnThread([this, copy]() { RunCleanup(copy); });
  }
}

void JobManager::FailJob(Job& job, const absl::Status& status) {
  if (Terminal(job.record.job().state())) return;
  job.record.mutable_job()->set_error_code(static_cast<int>(status.code()));
  job.record.mutable_job()->set_error_message(std::string(status.message()));
  EndJob(job, v1::FAILED);
}

void JobManager::RunCleanup(v1::JobRecord record) {
  // Scratch objects are deleted by name (no listing: some S3 deployments refuse prefix lists).
  std::vector<std::string> uris;
  if (!record.calib_tokens_uri().empty()) uris.push_back(record.calib_tokens_uri());
  for (const v1::LayerRecord& l : record.layers()) {
    if (!l.result_uri().empty()) uris.push_back(l.result_uri());
    if (!l.activations_uri().empty()) uris.push_back(l.activations_uri());
  }
  for (const std::string& uri : record.scratch_objects()) uris.push_back(uri);
  for (const std::string& uri : uris) (void)storage_.Delete(uri);
  // A failed or cancelled commit leaves no partial output behind.
  if (record.job().state() != v1::SUCCEEDED && record.commit().started()) {
    (void)storage_.Delete(storage::JoinUri(record.job().spec().output_uri(), kManifestName));
    (void)storage_.Delete(storage::JoinUri(record.job().spec().output_uri(), "config.json"));
    absl::StatusOr<std::vector<std::string>> left = storage_.List(record.job().spec().output_uri() + "/");
    if (left.ok()) {
      for (const std::string& uri : *left) (void)storage_.Delete(uri);
    }
  }
  std::error_code ec;
  fs::remove_all(CacheDir(record.job().job_id()), ec);
}

bool JobManager::AllLayersDone(const Job& job) const {
  for (const v1::LayerRecord& l : job.record.layers()) {
    if (!l.done()) return false;
  }
  return true;
}

bool JobManager::InTransformPhase(const Job& job) {
  return job.record.job().spec().method().transform() != "none" &&
         !job.record.job().spec().method().transform().empty() && job.record.transformed_model_uri().empty();
}

void JobManager::RestartTransform(Job& job) {
  job.transform_results.clear();
  job.transform_boundaries.clear();
  job.rounds.clear();
  for (int stage = 0; stage < job.record.job().stages_size(); ++stage) AssignStage(job, stage);
  changed_.SignalAll();  // reducers waiting for the old phase's rounds see their assignment go
}

// ---- scheduling -------------------------------------------------------------------------

void JobManager::Tick() {
  const absl::Time now = absl::Now();
  // Workers that stopped heartbeating are lost; their stages go to others.
  for (auto& [id, w] : workers_) {
    if (w.live && now - w.last_seen > absl::Milliseconds(options_.worker_timeout_ms)) {
      w.live = false;
      if (metrics_) metrics_->WorkerLost();
      std::fprintf(stderr, "caliber-coordinator: worker %s lost (no heartbeat for %d ms)\n", id.c_str(),
                   options_.worker_timeout_ms);
      UpdateGauges();
    }
  }
  int running = 0;
  std::vector<Job*> queued;
  for (auto& [id, job] : jobs_) {
    const v1::JobState s = job.record.job().state();
    if (s == v1::RUNNING) {
      ++running;
      if (job.busy) continue;
      if (!job.prepared) {
        job.busy = true;
        job.record.mutable_job()->set_phase("planning");
        SpawnThread([this, id = id]() { RunPreparation(id); });
        continue;
      }
      if (job.record.job().stages_size() == 0) {
        PlanAndAssign(job);
        continue;
      }
      if (InTransformPhase(job)) {
        const int stages = job.record.job().stages_size();
        if (static_cast<int>(job.transform_results.size()) == stages) {
          job.busy = true;
          job.record.mutable_job()->set_phase("folding transform");
          Changed(job);
          SpawnThread([this, id = id]() { RunTransformFold(id); });
          continue;
        }
        // The stages learn together: one lost worker restarts all of them.
        bool lost = false;
        for (int stage = 0; stage < stages; ++stage) {
          if (job.transform_results.count(stage)) continue;
          auto it = job.stage_assignment.find(stage);
          lost |= it == job.stage_assignment.end() || !workers_.count(it->second.worker_id) ||
                  !workers_.at(it->second.worker_id).live;
        }
        bool any_live = false;
        for (const auto& [wid, w] : workers_) any_live |= w.live;
        if (lost && any_live) RestartTransform(job);
        continue;
      }
      if (AllLayersDone(job)) {
        job.busy = true;
        SpawnThread([this, id = id]() { RunAssembly(id); });
        continue;
      }
      // Stages without a live worker (lost, or never assigned after a restart).
      for (int stage = 0; stage < job.record.job().stages_size(); ++stage) {
        const v1::StageProgress& st = job.record.job().stages(stage);
        if (st.layers_done() == st.end_layer() - st.first_layer()) continue;
        auto it = job.stage_assignment.find(stage);
        if (it == job.stage_assignment.end() || !workers_.count(it->second.worker_id) ||
            !workers_.at(it->second.worker_id).live) {
          AssignStage(job, stage);
        }
      }
    } else if (s == v1::QUEUED) {
      queued.push_back(&job);
    }
  }
  bool any_live = false;
  for (const auto& [id, w] : workers_) any_live |= w.live;
  if (!any_live || running >= options_.max_running_jobs || queued.empty()) return;
  Job* next = *std::min_element(queued.begin(), queued.end(), [](const Job* a, const Job* b) {
    const int pa = a->record.job().spec().priority(), pb = b->record.job().spec().priority();
    return pa != pb ? pa > pb : a->record.submit_seq() < b->record.submit_seq();
  });
  v1::QuantJob& j = *next->record.mutable_job();
  j.set_state(v1::RUNNING);
  *j.mutable_start_time() = Now();
  Changed(*next);
}

void JobManager::RunPreparation(std::string job_id) {
  v1::JobRecord record;
  {
    absl::MutexLock lock(&mu_);
    record = jobs_.at(job_id).record;
  }
  absl::StatusOr<ModelConfig> config = PrepareJob(storage_, record, CacheDir(job_id));
  absl::MutexLock lock(&mu_);
  Job& job = jobs_.at(job_id);
  job.busy = false;
  if (Terminal(job.record.job().state())) {  // cancelled meanwhile
    v1::JobRecord copy = job.record;
    copy.set_calib_tokens_uri(record.calib_tokens_uri());
    SpawnThread([this, copy]() { RunCleanup(copy); });
    return;
  }
  if (!config.ok()) {
    FailJob(job, config.status());
    return;
  }
  job.config = *config;
  job.prepared = true;
  job.record.set_calib_tokens_uri(record.calib_tokens_uri());
  if (job.record.job().stages_size() == 0) {
    PlanAndAssign(job);
  } else {
    job.record.mutable_job()->set_phase(InTransformPhase(job) ? "learning transform" : "calibrating");
    Changed(job);  // the scheduler reassigns the stages of a recovered job
  }
}

void JobManager::PlanAndAssign(Job& job) {
  const v1::QuantJobSpec& spec = job.record.job().spec();
  std::vector<const Worker*> live;
  for (const auto& [id, w] : workers_) {
    if (w.live) live.push_back(&w);
  }
  if (live.empty()) return;  // the scheduler plans again when workers return
  // Least-loaded workers first, then by id: deterministic for a given cluster state.
  std::map<std::string, int> load;
  for (const auto& [id, a] : assignments_) ++load[a.worker_id];
  std::sort(live.begin(), live.end(), [&](const Worker* a, const Worker* b) {
    return load[a->id] != load[b->id] ? load[a->id] < load[b->id] : a->id < b->id;
  });
  size_t n = live.size();
  if (spec.max_workers() > 0) n = std::min<size_t>(n, static_cast<size_t>(spec.max_workers()));
  n = std::min<size_t>(n, static_cast<size_t>(job.config.num_hidden_layers));
  const int64_t tokens = static_cast<int64_t>(spec.calibration().nsamples()) * spec.calibration().seq_len();
  const std::vector<LayerCost> costs = EstimateLayerCosts(job.config, tokens, spec.calibration().seq_len());
  std::vector<int64_t> memory;
  for (size_t i = 0; i < n; ++i) memory.push_back(live[i]->memory_bytes);
  absl::StatusOr<std::vector<StageRange>> plan = PlanStages(costs, memory, StageFixedBytes(job.config, tokens));
  // Fewer, bigger workers may fit where the smallest does not: drop the smallest and retry.
  while (!plan.ok() && n > 1) {
    auto smallest = std::min_element(live.begin(), live.begin() + static_cast<long>(n),
                                     [](const Worker* a, const Worker* b) { return a->memory_bytes < b->memory_bytes; });
    std::iter_swap(smallest, live.begin() + static_cast<long>(n) - 1);
    --n;
    memory.clear();
    for (size_t i = 0; i < n; ++i) memory.push_back(live[i]->memory_bytes);
    plan = PlanStages(costs, memory, StageFixedBytes(job.config, tokens));
  }
  if (!plan.ok()) {
    FailJob(job, plan.status());
    return;
  }
  v1::QuantJob& j = *job.record.mutable_job();
  j.clear_stages();
  for (size_t s = 0; s < plan->size(); ++s) {
    v1::StageProgress* st = j.add_stages();
    st->set_index(static_cast<int>(s));
    st->set_first_layer((*plan)[s].first);
    st->set_end_layer((*plan)[s].end);
    st->set_phase("waiting");
  }
  job.record.set_stage_count(static_cast<int>(plan->size()));
  const bool transform = InTransformPhase(job);
  j.set_phase(transform ? "learning transform" : "calibrating");
  for (size_t s = 0; s < plan->size(); ++s) {
    Assignment a{RandomId(transform ? "tfm-" : "asg-"), j.job_id(), static_cast<int>(s), live[s]->id};
    assignments_[a.id] = a;
    job.stage_assignment[static_cast<int>(s)] = a;
    j.mutable_stages(static_cast<int>(s))->set_worker_id(a.worker_id);
    j.mutable_stages(static_cast<int>(s))->set_attempt(1);
  }
  Changed(job);
}

std::string JobManager::PickWorker(const std::vector<std::string>& avoid) {
  std::map<std::string, int> load;
  for (const auto& [id, a] : assignments_) ++load[a.worker_id];
  std::string best;
  for (const auto& [id, w] : workers_) {
    if (!w.live || std::find(avoid.begin(), avoid.end(), id) != avoid.end()) continue;
    if (best.empty() || load[id] < load[best]) best = id;
  }
  return best;
}

void JobManager::AssignStage(Job& job, int stage) {
  std::vector<std::string> avoid;
  if (auto it = job.stage_assignment.find(stage); it != job.stage_assignment.end()) {
    avoid.push_back(it->second.worker_id);
    assignments_.erase(it->second.id);
    job.stage_assignment.erase(it);
  }
  std::string worker = PickWorker(avoid);
  if (worker.empty()) worker = PickWorker({});
  v1::StageProgress& st = *job.record.mutable_job()->mutable_stages(stage);
  if (worker.empty()) {
    if (!st.worker_id().empty()) {
      st.set_worker_id("");
      Changed(job);
    }
    return;  // no live worker: try again next tick
  }
  // Transform-phase assignments are told apart by their prefix: their reports never touch
  // the quantize phase's layer records.
  Assignment a{RandomId(InTransformPhase(job) ? "tfm-" : "asg-"), job.record.job().job_id(), stage, worker};
  assignments_[a.id] = a;
  job.stage_assignment[stage] = a;
  if (metrics_ && !avoid.empty()) metrics_->LayersReassigned(st.end_layer() - st.first_layer() - st.layers_done());
  st.set_worker_id(worker);
  st.set_attempt(st.attempt() + 1);
  st.set_phase("waiting");
  Changed(job);
}

v1::StageAssignment JobManager::BuildAssignment(const Job& job, const Assignment& a) const {
  const v1::QuantJob& j = job.record.job();
  const v1::StageProgress& st = j.stages(a.stage);
  v1::StageAssignment m;
  m.set_assignment_id(a.id);
  m.set_job_id(j.job_id());
  m.set_stage_index(a.stage);
  m.set_first_layer(st.first_layer());
  m.set_end_layer(st.end_layer());
  m.set_model_uri(j.spec().model_uri());
  m.set_scratch_uri(job.record.scratch_uri());
  *m.mutable_method() = j.spec().method();
  m.set_propagation(j.spec().propagation());
  m.set_nsamples(j.spec().calibration().nsamples());
  m.set_seq_len(j.spec().calibration().seq_len());
  m.set_batch_seqs(j.spec().batch_seqs());
  m.set_checkpoint_interval(options_.checkpoint_interval);
  if (InTransformPhase(job)) {
    // The whole range from its unquantized inputs: from the store once the upstream stage
    // stored them, else streamed from it.
    m.set_phase(v1::STAGE_PHASE_TRANSFORM);
    m.set_resume_from(st.first_layer());
    if (auto in = job.transform_boundaries.find(st.first_layer() - 1); in != job.transform_boundaries.end()) {
      m.set_input_uri(in->second);
    }
    if (!job.transform_boundaries.count(st.end_layer() - 1)) SetDownstream(job, a, m);
    return m;
  }
  if (!job.record.transformed_model_uri().empty()) m.set_model_uri(job.record.transformed_model_uri());
  // Resume from the latest stored activations before the first undone layer of the stage.
  int first_undone = st.end_layer();
  for (int l = st.first_layer(); l < st.end_layer(); ++l) {
    if (!job.record.layers(l).done()) {
      first_undone = l;
      break;
    }
  }
  int resume = st.first_layer();
  for (int l = first_undone - 1; l >= st.first_layer(); --l) {
    if (!job.record.layers(l).activations_uri().empty()) {
      resume = l + 1;
      break;
    }
  }
  m.set_resume_from(resume);
  if (resume > 0 && !job.record.layers(resume - 1).activations_uri().empty()) {
    m.set_input_uri(job.record.layers(resume - 1).activations_uri());
  }
  for (int l = resume; l < st.end_layer(); ++l) {
    if (job.record.layers(l).done()) {
      m.add_done_layers(l);
      m.add_done_layer_uris(job.record.layers(l).result_uri());
    }
  }
  // The next stage gets its input directly unless it is already stored.
  if (job.record.layers(st.end_layer() - 1).activations_uri().empty()) SetDownstream(job, a, m);
  return m;
}

void JobManager::SetDownstream(const Job& job, const Assignment& a, v1::StageAssignment& m) const {
  if (a.stage + 1 >= job.record.job().stages_size()) return;
  auto next = job.stage_assignment.find(a.stage + 1);
  if (next == job.stage_assignment.end()) return;
  auto w = workers_.find(next->second.worker_id);
  if (w == workers_.end() || !w->second.live) return;
  m.set_downstream_address(w->second.address);
  m.set_downstream_assignment_id(next->second.id);
}

// ---- CoordinatorService -------------------------------------------------------------------

v1::RegisterWorkerResponse JobManager::RegisterWorker(const v1::RegisterWorkerRequest& request) {
  absl::MutexLock lock(&mu_);
  Worker& w = workers_[request.worker_id()];
  w.id = request.worker_id();
  w.address = request.address();
  w.memory_bytes = request.memory_bytes() > 0 ? request.memory_bytes() : (int64_t{8} << 30);
  w.session = RandomId("ses-");
  w.last_seen = absl::Now();
  w.live = true;
  UpdateGauges();
  changed_.SignalAll();
  v1::RegisterWorkerResponse out;
  out.set_session_id(w.session);
  out.set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  return out;
}

v1::HeartbeatResponse JobManager::Heartbeat(const v1::HeartbeatRequest& request) {
  absl::MutexLock lock(&mu_);
  v1::HeartbeatResponse out;
  auto wit = workers_.find(request.worker_id());
  if (wit == workers_.end() || wit->second.session != request.session_id()) {
    out.set_reregister(true);
    return out;
  }
  Worker& w = wit->second;
  w.last_seen = absl::Now();
  if (!w.live) {
    w.live = true;
    UpdateGauges();
  }
  std::set<std::string> running(request.running_assignments().begin(), request.running_assignments().end());
  for (const auto& [id, a] : assignments_) {
    if (a.worker_id != w.id) continue;
    const Job& job = jobs_.at(a.job_id);
    if (!running.count(id)) {
      *out.add_assign() = BuildAssignment(job, a);
      continue;
    }
    running.erase(id);
    // A stage waiting for its input learns when it is stored.
    const v1::StageAssignment m = BuildAssignment(job, a);
    if (!m.input_uri().empty()) {
      v1::InputReady* r = out.add_inputs_ready();
      r->set_assignment_id(id);
      r->set_activations_uri(m.input_uri());
    }
  }
  for (const std::string& id : running) out.add_cancel(id);  // no longer this worker's
  return out;
}

JobManager::Job* JobManager::ReportedLayer(const std::string& job_id, const std::string& assignment_id,
                                           int layer, v1::ReportAck& ack) {
  ack.set_stale(!assignments_.count(assignment_id));
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.record.job().state() != v1::RUNNING) {
    ack.set_stale(true);
    return nullptr;
  }
  if (layer < 0 || layer >= it->second.record.layers_size()) return nullptr;
  return &it->second;
}

namespace {
bool IsTransformAssignment(const std::string& id) { return id.rfind("tfm-", 0) == 0; }
}  // namespace

v1::ReportAck JobManager::LayerDone(const v1::ReportLayerDoneRequest& r) {
  absl::MutexLock lock(&mu_);
  v1::ReportAck ack;
  Job* found = ReportedLayer(r.job_id(), r.assignment_id(), r.layer(), ack);
  if (found == nullptr) return ack;
  if (IsTransformAssignment(r.assignment_id())) return ack;  // transform stages quantize nothing
  Job& job = *found;
  v1::LayerRecord& l = *job.record.mutable_layers(r.layer());
  // Results are deterministic: whichever attempt reports a layer first, its bytes are the ones.
  if (!l.done()) {
    l.set_done(true);
    l.set_result_uri(r.result_uri());
    l.set_result_crc32(r.result_crc32());
    l.set_result_bytes(r.result_bytes());
    v1::QuantJob& j = *job.record.mutable_job();
    j.set_layer_done(r.layer(), true);
    j.set_layers_done(j.layers_done() + 1);
    for (v1::StageProgress& st : *j.mutable_stages()) {
      if (r.layer() >= st.first_layer() && r.layer() < st.end_layer()) {
        st.set_layers_done(st.layers_done() + 1);
        st.set_phase(st.layers_done() == st.end_layer() - st.first_layer() ? "done" : "calibrating");
      }
    }
    if (metrics_) {
      metrics_->LayerDone();
      metrics_->CalibrationTokens(static_cast<double>(r.tokens()));
    }
  } else if (r.result_uri() != l.result_uri()) {
    job.record.add_scratch_objects(r.result_uri());  // a duplicate attempt's copy: delete at the end
  }
  if (!r.activations_uri().empty() && l.activations_uri().empty()) l.set_activations_uri(r.activations_uri());
  Changed(job);
  return ack;
}

v1::ReportAck JobManager::BoundaryReady(const v1::ReportBoundaryReadyRequest& r) {
  absl::MutexLock lock(&mu_);
  v1::ReportAck ack;
  Job* found = ReportedLayer(r.job_id(), r.assignment_id(), r.layer(), ack);
  if (found == nullptr) return ack;
  Job& job = *found;
  if (IsTransformAssignment(r.assignment_id())) {
    // Unquantized activations for the next transform stage; a stale phase's are ignored.
    if (!ack.stale() && InTransformPhase(job) && !job.transform_boundaries.count(r.layer())) {
      job.transform_boundaries[r.layer()] = r.activations_uri();
      job.record.add_scratch_objects(r.activations_uri());
      Changed(job);
    }
    return ack;
  }
  v1::LayerRecord& l = *job.record.mutable_layers(r.layer());
  if (l.activations_uri().empty()) {
    l.set_activations_uri(r.activations_uri());
    Changed(job);
  }
  return ack;
}

v1::ReportAck JobManager::StageEnd(const v1::ReportStageEndRequest& r) {
  absl::MutexLock lock(&mu_);
  v1::ReportAck ack;
  auto a = assignments_.find(r.assignment_id());
  if (a == assignments_.end()) {
    ack.set_stale(true);
    return ack;
  }
  auto it = jobs_.find(a->second.job_id);
  Job& job = it->second;
  const int stage = a->second.stage;
  if (r.code() == 0) {
    if (IsTransformAssignment(r.assignment_id())) {
      const std::string uri = scratch::StageTransformUri(job.record.scratch_uri(), r.assignment_id());
      job.transform_results[stage] = uri;
      job.record.add_scratch_objects(uri);
    }
    job.stage_assignment.erase(stage);
    assignments_.erase(a);
    Changed(job);
    return ack;
  }
  FailJob(job, absl::Status(static_cast<absl::StatusCode>(r.code()),
                            absl::StrCat("stage ", stage, " (worker ", r.worker_id(), "): ", r.message())));
  return ack;
}

absl::StatusOr<v1::ReduceTransformShareResponse> JobManager::ReduceTransformShare(
    const v1::ReduceTransformShareRequest& r) {
  absl::MutexLock lock(&mu_);
  auto current = [&]() -> Job* {
    auto a = assignments_.find(r.assignment_id());
    if (a == assignments_.end() || a->second.job_id != r.job_id()) return nullptr;
    Job& job = jobs_.at(r.job_id());
    if (job.record.job().state() != v1::RUNNING || !InTransformPhase(job)) return nullptr;
    return &job;
  };
  Job* job = current();
  if (job == nullptr) {
    return absl::AbortedError(absl::StrCat("assignment ", r.assignment_id(), " is no longer learning a transform"));
  }
  const size_t n = static_cast<size_t>(job->config.hidden_size) * static_cast<size_t>(job->config.hidden_size);
  if (r.round() < 0 || static_cast<size_t>(r.g_r1_size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat("a round's share needs round >= 0 and ", n, " gradient entries"));
  }
  const int stage = assignments_.at(r.assignment_id()).stage;
  const int stages = job->record.job().stages_size();
  Job::Round& round = job->rounds[r.round()];
  if (!round.summed) {
    round.shares[stage] = {r.loss(), std::vector<double>(r.g_r1().begin(), r.g_r1().end())};
    if (static_cast<int>(round.shares.size()) == stages) {
      // In stage order: the same sum on every run with this plan.
      round.loss = 0;
      round.g_r1.assign(n, 0.0);
      for (const auto& [k, share] : round.shares) {
        round.loss += share.first;
        for (size_t i = 0; i < n; ++i) round.g_r1[i] += share.second[i];
      }
      round.shares.clear();
      round.summed = true;
      // Every stage sent this round, so each has the previous round's sum already.
      job->rounds.erase(job->rounds.begin(), job->rounds.find(r.round()));
      changed_.SignalAll();
    }
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (true) {
    job = current();
    if (job == nullptr || stopping_) {
      return absl::AbortedError(absl::StrCat("assignment ", r.assignment_id(), " is no longer learning a transform"));
    }
    auto it = job->rounds.find(r.round());
    v1::ReduceTransformShareResponse out;
    if (it != job->rounds.end() && it->second.summed) {
      out.set_ready(true);
      out.set_loss(it->second.loss);
      out.mutable_g_r1()->Assign(it->second.g_r1.begin(), it->second.g_r1.end());
      return out;
    }
    if (absl::Now() >= deadline) return out;  // not ready: the worker asks again
    changed_.WaitWithDeadline(&mu_, deadline);
  }
}

void JobManager::RunTransformFold(std::string job_id) {
  v1::JobRecord record;
  ModelConfig config;
  std::map<int, std::string> results;
  {
    absl::MutexLock lock(&mu_);
    Job& job = jobs_.at(job_id);
    record = job.record;
    config = job.config;
    results = job.transform_results;
  }
  const std::string cache = CacheDir(job_id);
  const std::string out_dir = TransformedModelCacheDir(cache);
  std::vector<std::string> uploaded;
  auto fold = [&]() -> absl::Status {
    absl::StatusOr<TransformOptions> options = TransformOptionsFromProto(record.job().spec().method());
    if (!options.ok()) return options.status();
    std::vector<StageTransform> stages;
    std::vector<nlohmann::json> parts;
    for (const auto& [stage, uri] : results) {
      absl::StatusOr<std::string> bytes = storage_.Read(uri);
      if (!bytes.ok()) return bytes.status();
      absl::StatusOr<StageTransform> t = DecodeStageTransform(*bytes, config);
      if (!t.ok()) return t.status();
      parts.push_back(t->report);
      stages.push_back(*std::move(t));
    }
    absl::StatusOr<ModelTransform> transform = AssembleModelTransform(config, stages);
    if (!transform.ok()) return transform.status();
    const std::string model_dir = ModelCacheDir(cache);
    absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(model_dir);
    if (!checkpoint.ok()) return checkpoint.status();
    std::error_code ec;
    fs::remove_all(out_dir, ec);
    if (absl::Status s = WriteTransformedModel(model_dir, config, **checkpoint, *transform, out_dir); !s.ok()) return s;
    const std::string model_uri = scratch::TransformedModelUri(record.scratch_uri());
    for (const auto& entry : fs::directory_iterator(out_dir)) {
      if (!entry.is_regular_file()) continue;
      const std::string uri = storage::JoinUri(model_uri, entry.path().filename().string());
      if (absl::Status s = storage_.WriteFile(uri, entry.path().string()); !s.ok()) return s;
      uploaded.push_back(uri);
    }
    const std::string report_uri = scratch::TransformReportUri(record.scratch_uri());
    if (absl::Status s = storage_.Write(report_uri, MergeTransformReports(*options, parts).dump() + "\n"); !s.ok()) {
      return s;
    }
    uploaded.push_back(report_uri);
    return absl::OkStatus();
  };
  const absl::Status status = fold();
  absl::StatusOr<ModelConfig> transformed =
      status.ok() ? ModelConfig::FromFile((fs::path(out_dir) / "config.json").string()) : absl::StatusOr<ModelConfig>(status);
  absl::MutexLock lock(&mu_);
  Job& job = jobs_.at(job_id);
  job.busy = false;
  for (const std::string& uri : uploaded) job.record.add_scratch_objects(uri);
  if (Terminal(job.record.job().state())) {
    v1::JobRecord copy = job.record;
    SpawnThread([this, copy]() { RunCleanup(copy); });
    return;
  }
  if (!transformed.ok()) {
    FailJob(job, transformed.status());
    return;
  }
  job.record.set_transformed_model_uri(scratch::TransformedModelUri(job.record.scratch_uri()));
  job.record.set_transform_report_uri(scratch::TransformReportUri(job.record.scratch_uri()));
  job.config = *transformed;
  job.transform_results.clear();
  job.transform_boundaries.clear();
  job.rounds.clear();
  job.record.mutable_job()->set_phase("calibrating");
  for (int stage = 0; stage < job.record.job().stages_size(); ++stage) AssignStage(job, stage);
  Changed(job);
}

void JobManager::RunAssembly(std::string job_id) {
  v1::JobRecord record;
  ModelConfig config;
  {
    absl::MutexLock lock(&mu_);
    Job& job = jobs_.at(job_id);
    record = job.record;
    config = job.config;
  }
  AssemblyHooks hooks;
  hooks.on_phase = [&](const std::string& phase) {
    absl::MutexLock lock(&mu_);
    Job& job = jobs_.at(job_id);
    job.record.mutable_job()->set_phase(phase);
    Changed(job);
  };
  hooks.before_commit = [&]() -> absl::Status {
    absl::MutexLock lock(&mu_);
    Job& job = jobs_.at(job_id);
    if (job.record.job().state() != v1::RUNNING) return absl::CancelledError("job ended before commit");
    if (!job.record.commit().started()) {
      absl::StatusOr<bool> exists = OutputExists(storage_, job.record.job().spec().output_uri());
      if (!exists.ok()) return exists.status();
      if (*exists) {
        return absl::AlreadyExistsError(absl::StrCat("output ", job.record.job().spec().output_uri(),
                                                     " appeared while the job ran"));
      }
      job.record.mutable_commit()->set_started(true);
      Changed(job);
    }
    return absl::OkStatus();
  };
  absl::StatusOr<v1::QualityReport> quality = AssembleCheckpoint(storage_, record, config, CacheDir(job_id), hooks);
  absl::MutexLock lock(&mu_);
  Job& job = jobs_.at(job_id);
  job.busy = false;
  if (Terminal(job.record.job().state())) {
    v1::JobRecord copy = job.record;
    SpawnThread([this, copy]() { RunCleanup(copy); });
    return;
  }
  if (!quality.ok()) {
    FailJob(job, quality.status());
    return;
  }
  *job.record.mutable_job()->mutable_report() = *quality;
  EndJob(job, v1::SUCCEEDED);
}

}  // namespace caliber::coordinator
