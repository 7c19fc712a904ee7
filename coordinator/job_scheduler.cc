// JobManager's scheduling: the tick that notices lost workers and starts queued jobs, stage
// planning, and the assignments handed to workers (what each stage runs and from where).
#include <algorithm>
#include <map>

#include "coordinator/job_manager.h"
#include "coordinator/job_manager_internal.h"
#include "coordinator/shard_planner.h"

namespace caliber::coordinator {

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
  if (now >= next_expiry_) {
    next_expiry_ = now + absl::Seconds(1);
    ExpireFinishedJobs();
    for (auto& [id, job] : jobs_) {
      if (job.sweep_at > now || job.busy) continue;
      job.sweep_at = absl::InfiniteFuture();
      SpawnCleanup(job.record, CleanupScope::kScratchOnly);
    }
  }
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
  ForgetLostWorkers(now);
  // After a failed record write, wait a little before changing records again.
  const bool can_write = now >= state_retry_at_;
  int running = 0;
  std::vector<Job*> queued;
  for (auto& [id, job] : jobs_) {
    const v1::JobState s = job.record.job().state();
    if (s == v1::RUNNING) {
      ++running;
      if (job.busy || !can_write) continue;
      if (job.pending_end) {  // an ending that was not durable yet
        PendingEnd end = *job.pending_end;
        (void)EndJob(job, end.state, end.error, end.report ? &*end.report : nullptr);
        continue;
      }
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
          job.record.mutable_job()->set_phase("folding transform");
          if (!Changed(job).ok()) continue;
          job.busy = true;
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
  if (!any_live || !can_write || running >= options_.max_running_jobs || queued.empty()) return;
  Job* next = *std::min_element(queued.begin(), queued.end(), [](const Job* a, const Job* b) {
    const int pa = a->record.job().spec().priority(), pb = b->record.job().spec().priority();
    return pa != pb ? pa > pb : a->record.submit_seq() < b->record.submit_seq();
  });
  v1::QuantJob& j = *next->record.mutable_job();
  j.set_state(v1::RUNNING);
  *j.mutable_start_time() = internal::NowTimestamp();
  (void)Changed(*next);  // if not durable it stays QUEUED; the next tick tries again
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
    Assignment a{internal::RandomId(transform ? "tfm-" : "asg-"), j.job_id(), static_cast<int>(s), live[s]->id};
    assignments_[a.id] = a;
    job.stage_assignment[static_cast<int>(s)] = a;
    j.mutable_stages(static_cast<int>(s))->set_worker_id(a.worker_id);
    j.mutable_stages(static_cast<int>(s))->set_attempt(1);
  }
  if (!Changed(job).ok()) DropAssignments(job);  // the record has no stages again: planned later
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
      (void)Changed(job);  // only what the API shows: nobody holds the stage either way
    }
    return;  // no live worker: try again next tick
  }
  // Transform-phase assignments are told apart by their prefix: their reports never touch
  // the quantize phase's layer records.
  Assignment a{internal::RandomId(InTransformPhase(job) ? "tfm-" : "asg-"), job.record.job().job_id(), stage, worker};
  assignments_[a.id] = a;
  job.stage_assignment[stage] = a;
  if (metrics_ && !avoid.empty()) metrics_->LayersReassigned(st.end_layer() - st.first_layer() - st.layers_done());
  st.set_worker_id(worker);
  st.set_attempt(st.attempt() + 1);
  st.set_phase("waiting");
  if (!Changed(job).ok()) {  // not durable: the stage stays unassigned; a later tick retries
    assignments_.erase(a.id);
    job.stage_assignment.erase(stage);
  }
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

}  // namespace caliber::coordinator
