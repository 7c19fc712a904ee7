// A worker's life with its coordinator: register, heartbeat (which brings assignments,
// cancellations and "your input is stored" notices), run each assignment on its own thread,
// and report its end. When the coordinator forgets the worker (it restarted), the worker
// drops its running stages and registers again; the coordinator rebuilds them from its
// durable records.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "caliber/v1/worker_protocol.grpc.pb.h"
#include "services/auth/tls_reloader.h"
#include "services/runtime/repeat_limiter.h"
#include "workers/stage_runner.h"

namespace caliber::workers {

struct WorkerOptions {
  std::string worker_id;
  std::string advertise_address;   // host:port other workers reach this one at
  std::string coordinator;         // host:port
  int64_t memory_bytes = 8ll << 30;
  std::string device = "cpu";
  std::string work_dir;
  std::string token;               // worker token presented to the coordinator and peers
  // Client side (to coordinator and peers); must outlive the agent. Rotated material is used
  // for new connections. Null: plaintext.
  const auth::TlsReloader* tls = nullptr;
  // Consecutive UNAUTHENTICATED / PERMISSION_DENIED answers (wrong or missing worker token)
  // after which Run() gives up; 0: never. Retries back off from 0.5 s to 8 s meanwhile.
  int max_auth_refusals = 10;
};

class WorkerAgent {
 public:
  // Fails (and nothing is sent anywhere) when a channel cannot be made. Bad TLS material never
  // gets this far (TlsReloader::Create refuses it) and is never replaced by plaintext: channels
  // use options.tls, which keeps the last validated material when the files go bad.
  static absl::StatusOr<std::unique_ptr<WorkerAgent>> Create(WorkerOptions options, storage::Storage& storage,
                                                             ActivationInbox& inbox, metrics::WorkerMetrics* metrics);
  ~WorkerAgent();

  // Runs until Stop() (-> OK): registration, heartbeats, assignments. Returns the last
  // refusal (UNAUTHENTICATED / PERMISSION_DENIED) once the coordinator has refused
  // max_auth_refusals calls in a row.
  absl::Status Run();
  // Stops heartbeating, cancels running stages and waits for them.
  void Stop();

 private:
  WorkerAgent(WorkerOptions options, std::shared_ptr<grpc::Channel> coordinator, storage::Storage& storage,
              ActivationInbox& inbox, metrics::WorkerMetrics* metrics);
  struct Running {
    std::thread thread;
    std::atomic<bool> cancelled{false};
    std::atomic<bool> finished{false};
    std::string input_uri;  // guarded by mu_
  };
  absl::StatusOr<v1::RegisterWorkerResponse> Register();
  // Logs a failed Register/Heartbeat (rate-limited) and counts refusals; returns the status to
  // give up with once there were max_auth_refusals in a row, else OK; `retry_in` is the wait
  // before the next attempt.
  absl::Status OnCoordinatorError(const absl::Status& status, absl::Duration& retry_in);
  void StartAssignment(const v1::StageAssignment& assignment) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelAll() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReapFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  template <typename Resp = v1::ReportAck, typename Req, typename Fn>
  absl::StatusOr<Resp> Report(const Req& request, Fn call);
  std::unique_ptr<grpc::ClientContext> NewContext(int timeout_ms) const;
  // A channel to a peer worker with the configured TLS, made at the first push to it. An error
  // when the TLS material cannot be loaded (e.g. mid-rotation): the push is skipped and the
  // next stage reads the stored copy; never a plaintext fallback. Failures are not cached.
  absl::StatusOr<std::shared_ptr<grpc::Channel>> ChannelTo(const std::string& address);

  const WorkerOptions options_;
  storage::Storage& storage_;
  ActivationInbox& inbox_;
  metrics::WorkerMetrics* metrics_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CoordinatorService::Stub> stub_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::string session_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<Running>> running_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<grpc::Channel>> peers_ ABSL_GUARDED_BY(mu_);
  // Used by the Run() thread only.
  int refusals_ = 0;  // consecutive
  runtime::RepeatLimiter coordinator_errors_{absl::Seconds(30)};
};

}  // namespace caliber::workers
