// caliber-worker: runs stages of quantization jobs for a coordinator. Serves WorkerService
// (activation pushes from upstream stages) and /metrics; dials the coordinator.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/registry.h"
#include "services/auth/call_credentials.h"
#include "services/auth/tls.h"
#include "services/auth/worker_token.h"
#include "services/runtime/log_limiter.h"
#include "services/runtime/server_limits.h"
#include "services/metrics/storage_metrics.h"
#include "services/metrics/worker_metrics.h"
#include "services/runtime/daemon_flags.h"
#include "services/runtime/env_flags.h"
#include "services/runtime/flag_names.h"
#include "services/runtime/signals.h"
#include "workers/activation_inbox.h"
#include "workers/worker_agent.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:7070", "coordinator address");
ABSL_FLAG(std::string, listen, "127.0.0.1:0", "WorkerService address (activation pushes)");
ABSL_FLAG(std::string, advertise, "", "address peers use to reach this worker (default: listen host + bound port)");
ABSL_FLAG(std::string, worker_id, "", "stable worker name (default: hostname-pid)");
ABSL_FLAG(int64_t, memory_mb, 8192, "memory this worker offers a stage");
ABSL_FLAG(std::string, device, "cpu", "cpu (CUDA workers: issue 6)");
ABSL_FLAG(std::string, work_dir, "", "local scratch (default: a temp dir)");
ABSL_FLAG(int, max_auth_refusals, 10,
          "exit 1 after the coordinator refuses this many calls in a row (UNAUTHENTICATED or "
          "PERMISSION_DENIED: a missing or wrong --worker-token-file); retries back off to 8 s, so "
          "10 is about a minute; 0: retry forever");
ABSL_FLAG(int64_t, max_push_inbox_bytes, int64_t{4} << 30,
          "activations pushed by upstream workers held at most (complete and in-flight, bytes); a push "
          "declaring more is INVALID_ARGUMENT, one that does not fit beside the others RESOURCE_EXHAUSTED "
          "(the next stage then reads the stored copy)");
ABSL_FLAG(absl::Duration, push_inbox_ttl, absl::Minutes(10),
          "a complete push no stage took is dropped this long after it arrived");

namespace caliber {
namespace {

int Run() {
  auto registry = std::make_shared<prometheus::Registry>();
  metrics::StorageMetrics storage_metrics(*registry);
  metrics::WorkerMetrics worker_metrics(*registry);
  absl::StatusOr<std::unique_ptr<storage::Storage>> storage = daemon::MakeStorage(&storage_metrics);
  if (!storage.ok()) return daemon::Fail("storage", storage.status());
  if (absl::GetFlag(FLAGS_device) != "cpu") {
    return daemon::Fail("device", absl::UnimplementedError("only --device cpu is built into this worker"));
  }
  absl::StatusOr<std::string> token = daemon::WorkerToken("caliber-worker");
  if (!token.ok()) return daemon::Fail("worker token", token.status());
  absl::StatusOr<std::unique_ptr<auth::TlsReloader>> tls =
      daemon::TlsReloaderFromFlags("caliber-worker", registry.get());
  if (!tls.ok()) return daemon::Fail("tls", tls.status());
  // The worker token is checked at the call's headers, before gRPC reads an activation chunk.
  auto admission = std::make_shared<auth::CallAdmission>();
  admission->AddService(v1::WorkerService::service_full_name(), [t = *token](absl::string_view authorization) {
    return auth::CheckWorkerAuthorization(authorization, t);
  });
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = daemon::AdmittingServerCredentials(**tls, admission);
  if (!creds.ok()) return daemon::Fail("tls", creds.status());
  absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> metrics_server = daemon::StartMetrics(registry);
  if (!metrics_server.ok()) return daemon::Fail("metrics", metrics_server.status());

  workers::InboxLimits inbox_limits;
  inbox_limits.max_bytes = absl::GetFlag(FLAGS_max_push_inbox_bytes);
  inbox_limits.ttl = absl::GetFlag(FLAGS_push_inbox_ttl);
  if (inbox_limits.max_bytes < 1 || inbox_limits.ttl <= absl::ZeroDuration()) {
    return daemon::Fail("flags", absl::InvalidArgumentError("--max-push-inbox-bytes and --push-inbox-ttl must be > 0"));
  }
  workers::ActivationInbox inbox(*token, inbox_limits);
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, *creds, &port);
  builder.RegisterService(&inbox);
  // Activation chunks are ~1 MiB (one row when a row is larger: at most 4 MiB); 64 MiB leaves
  // room for other chunkings. Only callers with the worker token get to send one.
  if (absl::Status s = daemon::ApplyServerLimits(builder, 64 << 20); !s.ok()) return daemon::Fail("flags", s);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return daemon::Fail("grpc", absl::UnavailableError("cannot listen on " + listen));

  workers::WorkerOptions options;
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  options.worker_id = absl::GetFlag(FLAGS_worker_id);
  if (options.worker_id.empty()) options.worker_id = absl::StrCat(host, "-", ::getpid());
  options.advertise_address = absl::GetFlag(FLAGS_advertise);
  if (options.advertise_address.empty()) {
    options.advertise_address = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
  }
  options.coordinator = absl::GetFlag(FLAGS_coordinator);
  options.memory_bytes = absl::GetFlag(FLAGS_memory_mb) << 20;
  options.device = absl::GetFlag(FLAGS_device);
  options.work_dir = absl::GetFlag(FLAGS_work_dir);
  if (options.work_dir.empty()) {
    options.work_dir = (std::filesystem::temp_directory_path() / absl::StrCat("caliber-worker-", ::getpid())).string();
  }
  options.token = *token;
  options.tls = tls->get();
  options.max_auth_refusals = absl::GetFlag(FLAGS_max_auth_refusals);
  if (options.max_auth_refusals < 0) {
    return daemon::Fail("flags", absl::InvalidArgumentError("--max-auth-refusals must be >= 0"));
  }
  absl::StatusOr<std::unique_ptr<workers::WorkerAgent>> created =
      workers::WorkerAgent::Create(options, **storage, inbox, &worker_metrics);
  if (!created.ok()) return daemon::Fail("tls", created.status());
  workers::WorkerAgent& agent = **created;
  daemon::Announce("caliber-worker " + options.worker_id, port, metrics_server->get());

  // SIGHUP: re-read the TLS files now (rotation); the poll every --tls-refresh-interval does too.
  std::unique_ptr<runtime::HangupWatcher> hangup = daemon::ReloadTlsOnHangup("caliber-worker", **tls);
  // The agent runs here until a signal stops it or the coordinator keeps refusing us.
  runtime::TerminationWaiter waiter([&agent, &options](int sig) {
    std::fprintf(stderr, "caliber-worker %s: signal %d, finishing the current layer\n", options.worker_id.c_str(), sig);
    // Finished layers are stored and reported; the stage's rest moves to another worker.
    agent.Stop();
  });
  const absl::Status run = agent.Run();
  waiter.Stop();
  agent.Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  std::error_code ec;
  std::filesystem::remove_all(options.work_dir, ec);
  if (!run.ok()) {
    std::fprintf(stderr, "caliber-worker %s: stopped: %s\n", options.worker_id.c_str(), run.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "caliber-worker %s: stopped\n", options.worker_id.c_str());
  return 0;
}

}  // namespace
}  // namespace caliber

int main(int argc, char** argv) {
  caliber::runtime::BlockTerminationSignals();
  caliber::runtime::InstallLogLimits();
  caliber::runtime::NormalizeFlagNames(argc, argv);
  absl::SetProgramUsageMessage("caliber-worker --coordinator HOST:PORT [--listen HOST:PORT] [--memory-mb N] ...");
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = caliber::runtime::ApplyEnvOverrides(argc, argv); !s.ok()) {
    std::fprintf(stderr, "caliber-worker: %s\n", s.ToString().c_str());
    return 2;
  }
  return caliber::Run();
}
