// Flags both daemons share (object storage, TLS, metrics, port announcement) and the small
// start-up steps built from them.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "services/auth/call_admission.h"
#include "services/auth/tls.h"
#include "services/auth/tls_reloader.h"
#include "services/metrics/metrics_server.h"
#include "services/runtime/signals.h"
#include "services/storage/storage.h"

namespace prometheus {
class Registry;
}

namespace caliber::daemon {

// --file-roots (comma-separated; default: the working directory), --s3-endpoint,
// --s3-region, --s3-path-style, --s3-retry-budget-ms, --s3-request-timeout-ms,
// --s3-connect-timeout-ms, --s3-min-throughput-kib-per-s; credentials from the AWS environment.
absl::StatusOr<std::unique_ptr<storage::Storage>> MakeStorage(storage::StorageObserver* observer);
// --tls-cert, --tls-key, --tls-ca, --tls-server-name.
auth::TlsOptions TlsFromFlags();
// The daemon's TLS material from --tls-* (plus --tls-require-client-cert, mTLS), validated
// (refuses expired / not yet valid certificates, a key not matching its certificate), warning
// within --tls-expiry-warning, re-read every --tls-refresh-interval and on SIGHUP (see
// ReloadTlsOnHangup). Plaintext without --tls-*; cert and key are required with any of them.
// `name` prefixes log lines; the expiry gauge goes to `registry`.
absl::StatusOr<std::unique_ptr<auth::TlsReloader>> TlsReloaderFromFlags(const std::string& name,
                                                                       prometheus::Registry* registry);
// Reloads `tls` on every SIGHUP, logging the outcome (an error keeps the previous material).
std::unique_ptr<runtime::HangupWatcher> ReloadTlsOnHangup(const std::string& name, auth::TlsReloader& tls);
// CheckSecretFileMode for a token file named by `flag`, honouring
// --allow-insecure-token-file-permissions.
absl::Status CheckTokenFile(const std::string& name, const std::string& flag, const std::string& path);
// The contents of --worker-token-file ("" without one): the secret between coordinator and
// workers; refused when group/world accessible (CheckTokenFile).
absl::StatusOr<std::string> WorkerToken(const std::string& name);
// The server side of `tls` (its rotating material; insecure when plaintext), every call passing
// `admission` at its headers, before its message is read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> AdmittingServerCredentials(
    const auth::TlsReloader& tls, std::shared_ptr<auth::CallAdmission> admission);
// --metrics-listen ("" disables /metrics), --metrics-max-connections,
// --metrics-max-connections-per-ip, --metrics-idle-timeout-s (see MetricsServerOptions).
absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> StartMetrics(std::shared_ptr<prometheus::Registry> registry);
// Logs the bound ports and writes --port-file (the gRPC port, for callers that chose port 0).
void Announce(const std::string& name, int grpc_port, const metrics::MetricsServer* metrics);
// Logs a start-up failure and returns the exit code.
int Fail(const std::string& what, const absl::Status& status);

}  // namespace caliber::daemon
