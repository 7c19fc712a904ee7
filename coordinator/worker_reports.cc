// JobManager's CoordinatorService side: worker registration and heartbeats, the reports of
// finished layers, stored boundaries and ended stages, and the transform phase's all-reduce.
#include <set>

#include "absl/strings/str_cat.h"
#include "coordinator/job_manager.h"
#include "coordinator/job_manager_internal.h"
#include "services/scratch_layout.h"

namespace caliber::coordinator {

absl::StatusOr<v1::RegisterWorkerResponse> JobManager::RegisterWorker(const v1::RegisterWorkerRequest& request) {
  if (absl::Status s = internal::CheckWorkerIdentity(request); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (!workers_.count(request.worker_id())) {
    if (absl::Status s = MakeRoomForWorker(); !s.ok()) return s;
  }
  Worker& w = workers_[request.worker_id()];
  w.id = request.worker_id();
  w.address = request.address();
  w.memory_bytes = request.memory_bytes() > 0 ? request.memory_bytes() : (int64_t{8} << 30);
  w.session = internal::RandomId("ses-");
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
                                           int layer, v1::ReportAck& ack,
                                           std::vector<std::string> written) {
  ack.set_stale(!assignments_.count(assignment_id));
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.record.job().state() != v1::RUNNING) {
    ack.set_stale(true);
    // Written after the job ended (and maybe after its cleanup): nobody will read it.
    if (it != jobs_.end()) DiscardLateObjects(it->second, std::move(written));
    return nullptr;
  }
  if (it->second.pending_end) {  // ending (not durable yet): its cleanup will take these
    ack.set_stale(true);
    return nullptr;
  }
  if (layer < 0 || layer >= it->second.record.layers_size()) return nullptr;
  return &it->second;
}

namespace {
// A report the coordinator could not record: the worker retries it (Unavailable), whatever
// made the write fail.
absl::Status Retry(const absl::Status& s) { return absl::UnavailableError(s.message()); }
}  // namespace

absl::StatusOr<v1::ReportAck> JobManager::LayerDone(const v1::ReportLayerDoneRequest& r) {
  absl::MutexLock lock(&mu_);
  v1::ReportAck ack;
  Job* found = ReportedLayer(r.job_id(), r.assignment_id(), r.layer(), ack, {r.result_uri(), r.activations_uri()});
  if (found == nullptr) return ack;
  if (internal::IsTransformAssignment(r.assignment_id())) return ack;  // transform stages quantize nothing
  Job& job = *found;
  v1::LayerRecord& l = *job.record.mutable_layers(r.layer());
  // Results are deterministic: whichever attempt reports a layer first, its bytes are the ones.
  const bool first = !l.done();
  if (first) {
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
  } else if (r.result_uri() != l.result_uri()) {
    job.record.add_scratch_objects(r.result_uri());  // a duplicate attempt's copy: delete at the end
  }
  if (!r.activations_uri().empty() && l.activations_uri().empty()) l.set_activations_uri(r.activations_uri());
  if (absl::Status s = Changed(job); !s.ok()) return Retry(s);
  if (first && metrics_) {
    metrics_->LayerDone();
    metrics_->CalibrationTokens(static_cast<double>(r.tokens()));
  }
  return ack;
}

absl::StatusOr<v1::ReportAck> JobManager::BoundaryReady(const v1::ReportBoundaryReadyRequest& r) {
  absl::MutexLock lock(&mu_);
  v1::ReportAck ack;
  Job* found = ReportedLayer(r.job_id(), r.assignment_id(), r.layer(), ack, {r.activations_uri()});
  if (found == nullptr) return ack;
  Job& job = *found;
  if (internal::IsTransformAssignment(r.assignment_id())) {
    // Unquantized activations for the next transform stage; a stale phase's are ignored.
    if (!ack.stale() && InTransformPhase(job) && !job.transform_boundaries.count(r.layer())) {
      job.record.add_scratch_objects(r.activations_uri());
      if (absl::Status s = Changed(job); !s.ok()) return Retry(s);
      job.transform_boundaries[r.layer()] = r.activations_uri();
    }
    return ack;
  }
  v1::LayerRecord& l = *job.record.mutable_layers(r.layer());
  if (l.activations_uri().empty()) {
    l.set_activations_uri(r.activations_uri());
    if (absl::Status s = Changed(job); !s.ok()) return Retry(s);
  }
  return ack;
}

absl::StatusOr<v1::ReportAck> JobManager::StageEnd(const v1::ReportStageEndRequest& r) {
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
    const bool transform = internal::IsTransformAssignment(r.assignment_id());
    const std::string uri = scratch::StageTransformUri(job.record.scratch_uri(), r.assignment_id());
    if (transform) job.record.add_scratch_objects(uri);
    if (absl::Status s = Changed(job); !s.ok()) return Retry(s);
    if (transform) job.transform_results[stage] = uri;
    job.stage_assignment.erase(stage);
    assignments_.erase(a);
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

}  // namespace caliber::coordinator
