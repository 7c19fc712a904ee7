#include "services/runtime/daemon_flags.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "services/auth/call_credentials.h"
#include "services/auth/secret_file_mode.h"

ABSL_FLAG(std::string, file_roots, "", "directories file:// URIs may use (comma-separated; default: working dir)");
ABSL_FLAG(std::string, s3_endpoint, "", "S3 endpoint URL (MinIO, moto, ...); default AWS");
ABSL_FLAG(std::string, s3_region, "us-east-1", "S3 region");
ABSL_FLAG(bool, s3_path_style, true, "path-style S3 addressing (bucket in the path)");
ABSL_FLAG(int, s3_retry_budget_ms, 60000, "give up on an unavailable object store after this long");
ABSL_FLAG(int, s3_request_timeout_ms, 30000,
          "one S3 request fails (and is retried) when no byte moved for this long; also the base of its total limit");
ABSL_FLAG(int, s3_connect_timeout_ms, 10000, "connecting to the S3 endpoint (TCP and TLS) may take this long");
ABSL_FLAG(int, s3_min_throughput_kib_per_s, 1024,
          "a request's total limit allows its bytes at this rate, on top of --s3-request-timeout-ms");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate of this endpoint (enables TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA bundle to verify peers");
ABSL_FLAG(std::string, tls_server_name, "", "expected server name of peers (default: their host)");
ABSL_FLAG(bool, tls_require_client_cert, false, "mTLS: peers must present a certificate signed by --tls-ca");
ABSL_FLAG(absl::Duration, tls_expiry_warning, absl::Hours(720),
          "warn at start-up and on reload when a --tls-cert/--tls-ca certificate expires within this");
ABSL_FLAG(absl::Duration, tls_refresh_interval, absl::Seconds(60),
          "re-read the --tls-* files this often (new material for new connections; bad material is "
          "refused and the old kept); SIGHUP re-reads at once; 0: only on SIGHUP");
ABSL_FLAG(std::string, worker_token_file, "", "shared secret between the coordinator and its workers");
ABSL_FLAG(bool, allow_insecure_token_file_permissions, false,
          "start even when a token file is readable or writable by group/others (warns)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:0", "address of /metrics (\"\" disables)");
ABSL_FLAG(int, metrics_max_connections, 256, "open /metrics connections in all (1..65536)");
ABSL_FLAG(int, metrics_max_connections_per_ip, 32,
          "open /metrics connections from one client IP (1..--metrics-max-connections)");
ABSL_FLAG(int, metrics_idle_timeout_s, 10, "a /metrics connection idle this long is closed (1..3600)");
ABSL_FLAG(std::string, port_file, "", "write the bound gRPC port here once listening");

namespace caliber::daemon {

absl::StatusOr<std::unique_ptr<storage::Storage>> MakeStorage(storage::StorageObserver* observer) {
  storage::StorageOptions o;
  const std::string roots = absl::GetFlag(FLAGS_file_roots);
  if (roots.empty()) {
    o.file_roots.push_back(std::filesystem::current_path().string());
  } else {
    for (absl::string_view r : absl::StrSplit(roots, ',', absl::SkipEmpty())) {
      o.file_roots.push_back(std::filesystem::absolute(std::string(r)).string());
    }
  }
  o.s3.endpoint = absl::GetFlag(FLAGS_s3_endpoint);
  o.s3.region = absl::GetFlag(FLAGS_s3_region);
  o.s3.path_style = absl::GetFlag(FLAGS_s3_path_style);
  o.s3.retry_budget_ms = absl::GetFlag(FLAGS_s3_retry_budget_ms);
  o.s3.request_timeout_ms = absl::GetFlag(FLAGS_s3_request_timeout_ms);
  o.s3.connect_timeout_ms = absl::GetFlag(FLAGS_s3_connect_timeout_ms);
  o.s3.min_throughput_bytes_per_s = int64_t{absl::GetFlag(FLAGS_s3_min_throughput_kib_per_s)} * 1024;
  o.observer = observer;
  return storage::Storage::Create(std::move(o));
}

auth::TlsOptions TlsFromFlags() {
  auth::TlsOptions t;
  t.cert_file = absl::GetFlag(FLAGS_tls_cert);
  t.key_file = absl::GetFlag(FLAGS_tls_key);
  t.ca_file = absl::GetFlag(FLAGS_tls_ca);
  t.server_name_override = absl::GetFlag(FLAGS_tls_server_name);
  return t;
}

absl::StatusOr<std::unique_ptr<auth::TlsReloader>> TlsReloaderFromFlags(const std::string& name,
                                                                       prometheus::Registry* registry) {
  auth::TlsOptions tls = TlsFromFlags();
  tls.require_client_cert = absl::GetFlag(FLAGS_tls_require_client_cert);
  auth::ReloadOptions reload;
  reload.name = name;
  reload.refresh_interval = absl::GetFlag(FLAGS_tls_refresh_interval);
  reload.expiry_warning = absl::GetFlag(FLAGS_tls_expiry_warning);
  reload.registry = registry;
  if (reload.refresh_interval < absl::ZeroDuration() || reload.expiry_warning < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--tls-refresh-interval and --tls-expiry-warning must be >= 0");
  }
  if (reload.refresh_interval > absl::ZeroDuration() && reload.refresh_interval < absl::Seconds(1)) {
    return absl::InvalidArgumentError("--tls-refresh-interval must be 0 (SIGHUP only) or at least 1s");
  }
  return auth::TlsReloader::Create(std::move(tls), /*server=*/true, std::move(reload));
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> AdmittingServerCredentials(
    const auth::TlsReloader& tls, std::shared_ptr<auth::CallAdmission> admission) {
  if (!tls.enabled()) return auth::AdmittingCredentials(auth::TlsOptions{}, std::move(admission));
  std::shared_ptr<grpc::ServerCredentials> creds = tls.ServerCredentials();
  if (creds == nullptr) return absl::InternalError("TLS: gRPC refused the server credentials");
  creds->SetAuthMetadataProcessor(std::move(admission));
  return creds;
}

std::unique_ptr<runtime::HangupWatcher> ReloadTlsOnHangup(const std::string& name, auth::TlsReloader& tls) {
  return std::make_unique<runtime::HangupWatcher>([name, &tls] {
    if (tls.enabled()) {
      (void)tls.Reload(/*verbose=*/true);
    } else {
      std::fprintf(stderr, "%s: SIGHUP: no TLS material to reload (plaintext)\n", name.c_str());
    }
  });
}

absl::Status CheckTokenFile(const std::string& name, const std::string& flag, const std::string& path) {
  return auth::CheckSecretFileMode(name, flag, path, absl::GetFlag(FLAGS_allow_insecure_token_file_permissions));
}

absl::StatusOr<std::string> WorkerToken(const std::string& name) {
  const std::string path = absl::GetFlag(FLAGS_worker_token_file);
  if (path.empty()) return std::string();
  if (absl::Status s = CheckTokenFile(name, "--worker-token-file", path); !s.ok()) return s;
  return auth::ReadTokenFile(path);
}

absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> StartMetrics(std::shared_ptr<prometheus::Registry> registry) {
  const std::string address = absl::GetFlag(FLAGS_metrics_listen);
  if (address.empty()) return std::unique_ptr<metrics::MetricsServer>();
  metrics::MetricsServerOptions options;
  options.max_connections = absl::GetFlag(FLAGS_metrics_max_connections);
  options.max_connections_per_ip = absl::GetFlag(FLAGS_metrics_max_connections_per_ip);
  options.idle_timeout_s = absl::GetFlag(FLAGS_metrics_idle_timeout_s);
  return metrics::MetricsServer::Start(address, std::move(registry), options);
}

void Announce(const std::string& name, int grpc_port, const metrics::MetricsServer* metrics) {
  std::fprintf(stderr, "%s: listening on port %d, metrics on port %d\n", name.c_str(), grpc_port,
               metrics ? metrics->port() : 0);
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    // Written atomically: a test polling for the file never reads half a number.
    const std::string tmp = path + ".tmp";
    std::ofstream(tmp) << grpc_port << " " << (metrics ? metrics->port() : 0) << "\n";
    std::filesystem::rename(tmp, path);
  }
}

int Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "startup failed (%s): %s\n", what.c_str(), status.ToString().c_str());
  return 1;
}

}  // namespace caliber::daemon
