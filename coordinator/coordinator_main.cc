// caliber-coordinator: the QuantService API for clients and the CoordinatorService for
// workers on one gRPC port, /metrics on another. Flags, a --flagfile, or CALIBER_<FLAG>
// environment variables configure it (command line > environment > flagfile > default).
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "absl/strings/str_split.h"
#include "coordinator/coordinator_service_impl.h"
#include "coordinator/job_manager.h"
#include "coordinator/job_watchers.h"
#include "coordinator/quant_service_impl.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/registry.h"
#include "services/auth/call_credentials.h"
#include "services/auth/tenants.h"
#include "services/auth/tls.h"
#include "services/auth/worker_token.h"
#include "services/grpc_status.h"
#include "services/runtime/log_limiter.h"
#include "services/runtime/server_limits.h"
#include "services/runtime/daemon_flags.h"
#include "services/metrics/coordinator_metrics.h"
#include "services/metrics/metrics_server.h"
#include "services/metrics/storage_metrics.h"
#include "services/runtime/env_flags.h"
#include "services/runtime/flag_names.h"
#include "services/runtime/signals.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7070", "gRPC address (port 0: pick one, see --port-file)");
ABSL_FLAG(std::string, state_dir, "caliber-state", "durable job records and local caches");
ABSL_FLAG(std::string, tokens_file, "", "tenants and bearer tokens (JSON); empty: one open tenant");
ABSL_FLAG(int, heartbeat_interval_ms, 500, "worker heartbeat period");
ABSL_FLAG(int, worker_timeout_ms, 5000, "a worker silent this long is lost; its stages move");
ABSL_FLAG(int, checkpoint_interval, 1, "workers store activations every N layers (resume points)");
ABSL_FLAG(int, max_running_jobs, 1, "jobs calibrating at once");
ABSL_FLAG(absl::Duration, finished_job_ttl, absl::Hours(24 * 7),
          "finished jobs are forgotten this long after they end (records and leftover scratch; "
          "checkpoints stay); 0: no age limit");
ABSL_FLAG(int, max_finished_jobs, 1000,
          "finished jobs kept per tenant; the oldest beyond it are forgotten; 0: no count limit");
ABSL_FLAG(int64_t, max_watchers, 20000,
          "open WatchQuantJob streams at most (each ~tens of KB, no thread); beyond: RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_workers, 1024,
          "workers registered at once (live and lost); a new worker beyond it replaces the longest-silent "
          "lost worker no stage needs, else RegisterWorker is RESOURCE_EXHAUSTED");
ABSL_FLAG(absl::Duration, lost_worker_ttl, absl::Minutes(10),
          "a lost worker is forgotten this long after its last heartbeat, once its stages have moved");

namespace caliber {
namespace {

// The largest message this port takes: a ReduceTransformShare (hidden_size^2 doubles of R1
// gradient; 64 MiB is hidden_size 2896). Only workers holding the worker token get to send one:
// admission refuses other calls before their message is read.
constexpr int kMaxReceiveBytes = 64 << 20;

int Run() {
  absl::StatusOr<std::unique_ptr<storage::Storage>> storage;
  auto registry = std::make_shared<prometheus::Registry>();
  metrics::StorageMetrics storage_metrics(*registry);
  metrics::CoordinatorMetrics coordinator_metrics(*registry);
  storage = daemon::MakeStorage(&storage_metrics);
  if (!storage.ok()) return daemon::Fail("storage", storage.status());

  std::unique_ptr<auth::TenantRegistry> tenants;
  if (const std::string f = absl::GetFlag(FLAGS_tokens_file); !f.empty()) {
    if (absl::Status s = daemon::CheckTokenFile("caliber-coordinator", "--tokens-file", f); !s.ok()) {
      return daemon::Fail("tokens", s);
    }
    absl::StatusOr<std::unique_ptr<auth::TenantRegistry>> r = auth::TenantRegistry::LoadFile(f);
    if (!r.ok()) return daemon::Fail("tokens", r.status());
    tenants = *std::move(r);
  } else {
    tenants = auth::TenantRegistry::AllowAll();
  }
  absl::StatusOr<std::string> worker_token = daemon::WorkerToken("caliber-coordinator");
  if (!worker_token.ok()) return daemon::Fail("worker token", worker_token.status());
  absl::StatusOr<std::unique_ptr<auth::TlsReloader>> tls =
      daemon::TlsReloaderFromFlags("caliber-coordinator", registry.get());
  if (!tls.ok()) return daemon::Fail("tls", tls.status());
  // Both services' tokens are checked at the call's headers, before gRPC reads its message;
  // the handlers check again (they need the tenant).
  auto admission = std::make_shared<auth::CallAdmission>();
  const auth::TenantRegistry* tenant_registry = tenants.get();
  admission->AddService(v1::QuantService::service_full_name(), [tenant_registry](absl::string_view authorization) {
    return ToGrpc(tenant_registry->Authenticate(std::string_view(authorization.data(), authorization.size())).status());
  });
  admission->AddService(v1::CoordinatorService::service_full_name(),
                        [token = *worker_token](absl::string_view authorization) {
                          return auth::CheckWorkerAuthorization(authorization, token);
                        });
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = daemon::AdmittingServerCredentials(**tls, admission);
  if (!creds.ok()) return daemon::Fail("tls", creds.status());

  absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> metrics_server = daemon::StartMetrics(registry);
  if (!metrics_server.ok()) return daemon::Fail("metrics", metrics_server.status());

  coordinator::CoordinatorOptions options;
  options.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.heartbeat_interval_ms = absl::GetFlag(FLAGS_heartbeat_interval_ms);
  options.worker_timeout_ms = absl::GetFlag(FLAGS_worker_timeout_ms);
  options.checkpoint_interval = absl::GetFlag(FLAGS_checkpoint_interval);
  options.max_running_jobs = absl::GetFlag(FLAGS_max_running_jobs);
  options.retention.ttl = absl::GetFlag(FLAGS_finished_job_ttl);
  options.retention.max_finished_per_tenant = absl::GetFlag(FLAGS_max_finished_jobs);
  if (options.retention.ttl < absl::ZeroDuration() || options.retention.max_finished_per_tenant < 0) {
    return daemon::Fail("flags", absl::InvalidArgumentError("--finished-job-ttl and --max-finished-jobs must be >= 0"));
  }
  options.max_workers = absl::GetFlag(FLAGS_max_workers);
  options.lost_worker_ttl = absl::GetFlag(FLAGS_lost_worker_ttl);
  if (options.max_workers < 1 || options.lost_worker_ttl < absl::ZeroDuration()) {
    return daemon::Fail("flags", absl::InvalidArgumentError("--max-workers must be >= 1 and --lost-worker-ttl >= 0"));
  }
  if (absl::GetFlag(FLAGS_max_watchers) < 0) {
    return daemon::Fail("flags", absl::InvalidArgumentError("--max-watchers must be >= 0"));
  }
  // Outlives the JobManager (which publishes into it until its threads stop) and the server.
  coordinator::JobWatchers watchers(absl::GetFlag(FLAGS_max_watchers));
  coordinator::JobManager jobs(options, **storage, &coordinator_metrics);
  jobs.SetChangeListener([&watchers](const v1::QuantJob& job, int64_t version) { watchers.Publish(job, version); });
  if (absl::Status s = jobs.Start(); !s.ok()) return daemon::Fail("state", s);

  coordinator::QuantServiceImpl quant_service(jobs, *tenants, watchers);
  coordinator::CoordinatorServiceImpl coordinator_service(jobs, *worker_token);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), *creds, &port);
  builder.RegisterService(&quant_service);
  builder.RegisterService(&coordinator_service);
  if (absl::Status s = daemon::ApplyServerLimits(builder, kMaxReceiveBytes); !s.ok()) {
    jobs.Stop();
    watchers.Shutdown();
    return daemon::Fail("flags", s);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    jobs.Stop();
    watchers.Shutdown();
    return daemon::Fail("grpc", absl::UnavailableError("cannot listen on " + absl::GetFlag(FLAGS_listen)));
  }
  daemon::Announce("caliber-coordinator", port, metrics_server->get());

  // SIGHUP: re-read the TLS files now (rotation); the poll every --tls-refresh-interval does too.
  std::unique_ptr<runtime::HangupWatcher> hangup = daemon::ReloadTlsOnHangup("caliber-coordinator", **tls);
  const int sig = runtime::WaitForTerminationSignal();
  std::fprintf(stderr, "caliber-coordinator: signal %d, shutting down\n", sig);
  // End the watch streams (UNAVAILABLE: the client re-watches elsewhere or later), stop taking
  // calls (in-flight ones get 5 s), then let job threads finish: every job's state is already
  // durable, so a restart picks up where this left off.
  watchers.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  jobs.Stop();
  std::fprintf(stderr, "caliber-coordinator: stopped\n");
  return 0;
}

}  // namespace
}  // namespace caliber

int main(int argc, char** argv) {
  // Before any thread exists, so gRPC's and civetweb's threads inherit the blocked signals
  // and only WaitForTerminationSignal receives them.
  caliber::runtime::BlockTerminationSignals();
  caliber::runtime::InstallLogLimits();
  caliber::runtime::NormalizeFlagNames(argc, argv);
  absl::SetProgramUsageMessage("caliber-coordinator [--listen HOST:PORT] [--state-dir DIR] [--file-roots DIRS] ...");
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = caliber::runtime::ApplyEnvOverrides(argc, argv); !s.ok()) {
    std::fprintf(stderr, "caliber-coordinator: %s\n", s.ToString().c_str());
    return 2;
  }
  return caliber::Run();
}
