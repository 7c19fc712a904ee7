// TLS material of a daemon that can be rotated while it runs, without ever downgrading.
//
// The files named by --tls-cert/--tls-key/--tls-ca are read and validated (LoadTlsMaterial:
// parse, key matches cert, dates valid) at start-up, every --tls-refresh-interval and on
// Reload() (SIGHUP). Only material that passes is installed: it is written to a private copy
// (a 0700 temp directory; certificate and key in ONE file, renamed into place, so gRPC never
// reads a new certificate with an old key) that gRPC's FileWatcherCertificateProvider re-reads
// every second and uses for new connections. Material that fails leaves the previous copy in
// place, with an error logged: never plaintext, never half-loaded.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/auth/tls.h"

namespace grpc::experimental {
class CertificateProviderInterface;
}
namespace prometheus {
class Gauge;
class Registry;
}  // namespace prometheus

namespace caliber::auth {

struct ReloadOptions {
  std::string name;                                     // log prefix, e.g. "caliber-coordinator"
  absl::Duration refresh_interval = absl::Seconds(60);  // re-read the files; 0: only Reload()
  absl::Duration expiry_warning = absl::Hours(720);     // warn when a certificate expires sooner
  prometheus::Registry* registry = nullptr;             // for the expiry gauge (optional)
};

class TlsReloader {
 public:
  // Plaintext when !options.enabled() (insecure credentials, nothing to reload). Otherwise
  // fails like LoadTlsMaterial on bad material; `server`: cert and key are required.
  static absl::StatusOr<std::unique_ptr<TlsReloader>> Create(TlsOptions options, bool server,
                                                             ReloadOptions reload);
  ~TlsReloader();  // stops polling, removes the private copy

  TlsReloader(const TlsReloader&) = delete;
  TlsReloader& operator=(const TlsReloader&) = delete;

  // Re-reads the files now. OK: installed (or unchanged). An error: the previous material stays.
  // Logs a change, and an error once until it changes; `verbose` (SIGHUP) logs every outcome.
  absl::Status Reload(bool verbose = true);

  bool enabled() const { return options_.enabled(); }
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;
  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() const;
  // A channel with ChannelCredentials() and ChannelArgs(options).
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Channel(const std::string& target) const;

 private:
  TlsReloader(TlsOptions options, bool server, ReloadOptions reload);
  absl::Status Install(const TlsMaterial& m);  // writes the private copy; under mu_
  void WarnIfExpiringSoon();                    // under mu_
  void Poll();

  const TlsOptions options_;
  const bool server_;
  const ReloadOptions reload_;
  std::string dir_;  // private copy
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider_;
  prometheus::Gauge* cert_expiry_ = nullptr;
  prometheus::Gauge* ca_expiry_ = nullptr;

  absl::Mutex reload_mu_;  // one Reload at a time (poller and SIGHUP): files read in order
  absl::Mutex mu_;
  TlsMaterial current_ ABSL_GUARDED_BY(mu_);
  bool warned_ ABSL_GUARDED_BY(mu_) = false;       // about current_'s expiry
  std::string last_error_ ABSL_GUARDED_BY(mu_);    // logged once until it changes
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread poller_;
};

}  // namespace caliber::auth
