#include "workers/worker_agent.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "services/grpc_status.h"
#include "workers/tls_refusal.h"
#include "workers/transform_stage.h"

namespace caliber::workers {
namespace {

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const auth::TlsReloader* tls, const std::string& target) {
  if (tls != nullptr) return tls->Channel(target);
  return auth::MakeChannel(target, auth::TlsOptions{});
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerAgent>> WorkerAgent::Create(WorkerOptions options, storage::Storage& storage,
                                                                 ActivationInbox& inbox,
                                                                 metrics::WorkerMetrics* metrics) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options.tls, options.coordinator);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<WorkerAgent>(
      new WorkerAgent(std::move(options), *std::move(channel), storage, inbox, metrics));
}

WorkerAgent::WorkerAgent(WorkerOptions options, std::shared_ptr<grpc::Channel> coordinator,
                         storage::Storage& storage, ActivationInbox& inbox, metrics::WorkerMetrics* metrics)
    : options_(std::move(options)),
      storage_(storage),
      inbox_(inbox),
      metrics_(metrics),
      channel_(std::move(coordinator)),
      stub_(v1::CoordinatorService::NewStub(channel_)) {}

WorkerAgent::~WorkerAgent() { Stop(); }

std::unique_ptr<grpc::ClientContext> WorkerAgent::NewContext(int timeout_ms) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  if (!options_.token.empty()) context->AddMetadata("authorization", "Bearer " + options_.token);
  return context;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> WorkerAgent::ChannelTo(const std::string& address) {
  absl::MutexLock lock(&mu_);
  if (auto it = peers_.find(address); it != peers_.end()) return it->second;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options_.tls, address);
  if (!channel.ok()) {
    return absl::Status(channel.status().code(),
                        absl::StrCat("no channel to ", address, ", nothing sent: ", channel.status().message()));
  }
  peers_[address] = *channel;
  return *channel;
}

absl::StatusOr<v1::RegisterWorkerResponse> WorkerAgent::Register() {
  v1::RegisterWorkerRequest request;
  request.set_worker_id(options_.worker_id);
  request.set_address(options_.advertise_address);
  request.set_memory_bytes(options_.memory_bytes);
  request.set_device(options_.device);
  request.set_threads(static_cast<int>(std::thread::hardware_concurrency()));
  v1::RegisterWorkerResponse response;
  auto context = NewContext(5000);
  if (grpc::Status s = stub_->RegisterWorker(context.get(), request, &response); !s.ok()) return FromGrpc(s);
  return response;
}

// Reports must reach the coordinator: retried while it is unreachable (e.g. restarting).
template <typename Resp, typename Req, typename Fn>
absl::StatusOr<Resp> WorkerAgent::Report(const Req& request, Fn call) {
  absl::Status last;
  for (int attempt = 0; attempt < 60; ++attempt) {
    Resp ack;
    auto context = NewContext(10000);
    const grpc::Status s = call(context.get(), request, &ack);
    if (s.ok()) return ack;
    last = FromGrpc(s);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE && s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) break;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return last;
}

void WorkerAgent::StartAssignment(const v1::StageAssignment& assignment) {
  // The inbox admits the upstream push from now on (the stage may still be fetching its model);
  // a push that arrives before this heartbeat brought the assignment is refused and retried by
  // the upstream worker for 5 s (stage_io.cc), then the stored copy is read.
  if (assignment.resume_from() > 0 && assignment.input_uri().empty()) {
    inbox_.store().Expect(assignment.assignment_id(), assignment.resume_from() - 1,
                          int64_t{assignment.nsamples()} * assignment.seq_len(), 0);
  }
  auto running = std::make_unique<Running>();
  Running* r = running.get();
  r->thread = std::thread([this, assignment, r]() {
    StageContext ctx;
    ctx.storage = &storage_;
    ctx.inbox = &inbox_;
    ctx.metrics = metrics_;
    ctx.work_dir = options_.work_dir;
    ctx.worker_id = options_.worker_id;
    ctx.cancelled = &r->cancelled;
    ctx.push_token = options_.token;
    ctx.report_layer = [this](const v1::ReportLayerDoneRequest& req) {
      return Report(req, [this](grpc::ClientContext* c, const v1::ReportLayerDoneRequest& q, v1::ReportAck* a) {
        return stub_->ReportLayerDone(c, q, a);
      });
    };
    ctx.report_boundary = [this](const v1::ReportBoundaryReadyRequest& req) {
      return Report(req, [this](grpc::ClientContext* c, const v1::ReportBoundaryReadyRequest& q, v1::ReportAck* a) {
        return stub_->ReportBoundaryReady(c, q, a);
      });
    };
    ctx.input_ready = [this, r]() {
      absl::MutexLock lock(&mu_);
      return r->input_uri;
    };
    ctx.channel_to = [this](const std::string& address) { return ChannelTo(address); };
    ctx.reduce = [this](const v1::ReduceTransformShareRequest& req) {
      return Report<v1::ReduceTransformShareResponse>(
          req, [this](grpc::ClientContext* c, const v1::ReduceTransformShareRequest& q,
                      v1::ReduceTransformShareResponse* a) { return stub_->ReduceTransformShare(c, q, a); });
    };
    std::fprintf(stderr, "caliber-worker %s: job %s %s stage %d layers [%d, %d) from layer %d\n",
                 options_.worker_id.c_str(), assignment.job_id().c_str(),
                 assignment.phase() == v1::STAGE_PHASE_TRANSFORM ? "transform" : "quantize", assignment.stage_index(),
                 assignment.first_layer(), assignment.end_layer(), assignment.resume_from());
    const absl::Status status = assignment.phase() == v1::STAGE_PHASE_TRANSFORM ? RunTransformStage(assignment, ctx)
                                                                                : RunStage(assignment, ctx);
    if (!r->cancelled.load()) {
      if (!status.ok()) {
        std::fprintf(stderr, "caliber-worker %s: stage failed: %s\n", options_.worker_id.c_str(),
                     status.ToString().c_str());
      }
      v1::ReportStageEndRequest end;
      end.set_worker_id(options_.worker_id);
      end.set_assignment_id(assignment.assignment_id());
      end.set_job_id(assignment.job_id());
      end.set_code(static_cast<int>(status.code()));
      end.set_message(std::string(status.message()));
      (void)Report(end, [this](grpc::ClientContext* c, const v1::ReportStageEndRequest& q, v1::ReportAck* a) {
        return stub_->ReportStageEnd(c, q, a);
      });
    }
    r->finished.store(true);
  });
  running_[assignment.assignment_id()] = std::move(running);
}

void WorkerAgent::ReapFinished() {
  for (auto it = running_.begin(); it != running_.end();) {
    if (it->second->finished.load()) {
      it->second->thread.join();
      inbox_.store().Forget(it->first);
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
}

void WorkerAgent::CancelAll() {
  for (auto& [id, r] : running_) {
    r->cancelled.store(true);
    inbox_.store().Forget(id);
  }
}

absl::Status WorkerAgent::OnCoordinatorError(const absl::Status& status, absl::Duration& retry_in) {
  const char* id = options_.worker_id.c_str();
  const bool refused =
      status.code() == absl::StatusCode::kUnauthenticated || status.code() == absl::StatusCode::kPermissionDenied;
  int suppressed = 0;
  if (!refused) {
    // Unreachable or restarting: not an answer, so it neither counts nor resets the refusals.
    retry_in = absl::Milliseconds(500);
    const bool tls = options_.tls != nullptr && options_.tls->enabled();
    const std::string tls_why =
        status.code() == absl::StatusCode::kUnavailable ? ExplainTlsRefusal(status.message(), tls) : std::string();
    if (!tls_why.empty()) {
      // Keyed on the explanation, not gRPC's text (which varies between retries): one line,
      // then at most one per 30 s with the count of those held back. A rotation may fix it,
      // so the worker keeps retrying.
      if (coordinator_errors_.ShouldLog(tls_why, suppressed)) {
        std::fprintf(stderr,
                     "caliber-worker %s: the coordinator at %s refused the TLS connection: %s [%s] (retrying%s)\n", id,
                     options_.coordinator.c_str(), tls_why.c_str(), status.ToString().c_str(),
                     suppressed > 0 ? absl::StrCat("; ", suppressed, " more like it").c_str() : "");
      }
      return absl::OkStatus();
    }
    if (coordinator_errors_.ShouldLog(status.ToString(), suppressed)) {
      std::fprintf(stderr, "caliber-worker %s: cannot reach the coordinator at %s: %s (retrying%s)\n", id,
                   options_.coordinator.c_str(), status.ToString().c_str(),
                   suppressed > 0 ? absl::StrCat("; ", suppressed, " more like it").c_str() : "");
    }
    return absl::OkStatus();
  }
  ++refusals_;
  const int max = options_.max_auth_refusals;
  const bool give_up = max > 0 && refusals_ >= max;
  if (coordinator_errors_.ShouldLog(status.ToString(), suppressed) || give_up) {
    std::fprintf(stderr,
                 "caliber-worker %s: the coordinator at %s refused this worker: %s (refusal %d%s in a row; "
                 "is --worker-token-file the coordinator's?)%s\n",
                 id, options_.coordinator.c_str(), status.ToString().c_str(), refusals_,
                 max > 0 ? absl::StrCat(" of ", max).c_str() : "", give_up ? "; giving up" : "");
  }
  if (give_up) return status;
  // A wrong token stays wrong: back off instead of hammering the coordinator.
  retry_in = std::min(absl::Milliseconds(500) * (1 << std::min(refusals_ - 1, 4)), absl::Seconds(8));
  return absl::OkStatus();
}

absl::Status WorkerAgent::Run() {
  int interval_ms = 500;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
    }
    std::string session;
    {
      absl::MutexLock lock(&mu_);
      session = session_;
    }
    if (session.empty()) {
      absl::StatusOr<v1::RegisterWorkerResponse> reg = Register();
      if (!reg.ok()) {
        if (metrics_) metrics_->SetConnected(false);
        absl::Duration retry_in;
        if (absl::Status give_up = OnCoordinatorError(reg.status(), retry_in); !give_up.ok()) return give_up;
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stop_), retry_in);
        continue;
      }
      refusals_ = 0;
      coordinator_errors_.Reset();
      interval_ms = std::max(50, reg->heartbeat_interval_ms());
      absl::MutexLock lock(&mu_);
      session_ = reg->session_id();
      std::fprintf(stderr, "caliber-worker %s: registered with %s\n", options_.worker_id.c_str(),
                   options_.coordinator.c_str());
      if (metrics_) metrics_->SetConnected(true);
      continue;
    }
    v1::HeartbeatRequest request;
    request.set_worker_id(options_.worker_id);
    request.set_session_id(session);
    {
      absl::MutexLock lock(&mu_);
      ReapFinished();
      inbox_.store().Sweep();  // unclaimed pushes expire even when no other push comes
      for (const auto& [id, r] : running_) {
        if (!r->cancelled.load()) request.add_running_assignments(id);
      }
    }
    v1::HeartbeatResponse response;
    auto context = NewContext(std::max(2000, 4 * interval_ms));
    const grpc::Status s = stub_->Heartbeat(context.get(), request, &response);
    absl::Duration wait = absl::Milliseconds(interval_ms);
    if (!s.ok()) {
      if (absl::Status give_up = OnCoordinatorError(FromGrpc(s), wait); !give_up.ok()) return give_up;
      wait = std::max(wait, absl::Milliseconds(interval_ms));
    } else {
      refusals_ = 0;
      coordinator_errors_.Reset();
    }
    {
      absl::MutexLock lock(&mu_);
      if (!s.ok()) {
        if (metrics_) metrics_->SetConnected(false);
      } else if (response.reregister()) {
        // The coordinator restarted or dropped us: our stages are no longer its stages.
        CancelAll();
        session_.clear();
        continue;
      } else {
        if (metrics_) metrics_->SetConnected(true);
        for (const std::string& id : response.cancel()) {
          if (auto it = running_.find(id); it != running_.end()) it->second->cancelled.store(true);
          inbox_.store().Forget(id);  // moved elsewhere: its input goes there
        }
        for (const v1::StageAssignment& a : response.assign()) {
          if (!running_.count(a.assignment_id())) StartAssignment(a);
        }
        for (const v1::InputReady& ready : response.inputs_ready()) {
          if (auto it = running_.find(ready.assignment_id()); it != running_.end()) {
            it->second->input_uri = ready.activations_uri();
          }
        }
      }
      mu_.AwaitWithTimeout(absl::Condition(&stop_), wait);
    }
  }
  return absl::OkStatus();
}

void WorkerAgent::Stop() {
  std::map<std::string, std::unique_ptr<Running>> running;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    CancelAll();
    running.swap(running_);
  }
  for (auto& [id, r] : running) {
    if (r->thread.joinable()) r->thread.join();
  }
}

}  // namespace caliber::workers
