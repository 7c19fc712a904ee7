#include "services/auth/tls_reloader.h"

#include <fcntl.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/auth/cert_check.h"

namespace caliber::auth {
namespace {

// gRPC re-reads the private copy this often (two small local files); the operator's files are
// polled at ReloadOptions::refresh_interval.
constexpr unsigned kCopyRefreshSeconds = 1;

absl::Status WriteFileAtomically(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("TLS: cannot write ", tmp));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n <= 0) {
      ::close(fd);
      return absl::InternalError(absl::StrCat("TLS: cannot write ", tmp));
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("TLS: cannot rename ", tmp));
  }
  return absl::OkStatus();
}

double Seconds(absl::Time t) { return t == absl::InfiniteFuture() ? 0 : absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

}  // namespace

TlsReloader::TlsReloader(TlsOptions options, bool server, ReloadOptions reload)
    : options_(std::move(options)), server_(server), reload_(std::move(reload)) {}

absl::StatusOr<std::unique_ptr<TlsReloader>> TlsReloader::Create(TlsOptions options, bool server,
                                                                  ReloadOptions reload) {
  if (!options.enabled() && options.require_client_cert) {
    return absl::InvalidArgumentError("TLS: require_client_cert needs cert_file, key_file and ca_file");
  }
  std::unique_ptr<TlsReloader> r(new TlsReloader(std::move(options), server, std::move(reload)));
  if (!r->enabled()) return r;
  absl::StatusOr<TlsMaterial> m = LoadTlsMaterial(r->options_, server);
  if (!m.ok()) return m.status();

  std::string dir_template = (std::filesystem::temp_directory_path() / "caliber-tls-XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("TLS: cannot create a private directory like ", dir_template));
  }
  r->dir_ = dir_template;  // mkdtemp makes it 0700
  if (r->reload_.registry != nullptr) {
    auto& family = prometheus::BuildGauge()
                       .Name("caliber_tls_certificate_expiry_timestamp_seconds")
                       .Help("Unix time when the earliest certificate of a TLS file in use expires")
                       .Register(*r->reload_.registry);
    const TlsOptions& o = r->options_;
    if (!o.cert_file.empty()) r->cert_expiry_ = &family.Add({{"file", o.cert_file}, {"role", "cert"}});
    if (!o.ca_file.empty()) r->ca_expiry_ = &family.Add({{"file", o.ca_file}, {"role", "ca"}});
  }
  {
    absl::MutexLock lock(&r->mu_);
    if (absl::Status s = r->Install(*m); !s.ok()) return s;
    r->WarnIfExpiringSoon();
  }
  // The provider reads the copy once here (synchronously), then every kCopyRefreshSeconds.
  const std::string identity = r->dir_ + "/identity.pem", ca = r->dir_ + "/ca.pem";
  using grpc::experimental::FileWatcherCertificateProvider;
  if (!m->cert.empty() && !m->ca.empty()) {
    r->provider_ = std::make_shared<FileWatcherCertificateProvider>(identity, identity, ca, kCopyRefreshSeconds);
  } else if (!m->cert.empty()) {
    r->provider_ = std::make_shared<FileWatcherCertificateProvider>(identity, identity, kCopyRefreshSeconds);
  } else {
    r->provider_ = std::make_shared<FileWatcherCertificateProvider>(ca, kCopyRefreshSeconds);
  }
  if (r->reload_.refresh_interval > absl::ZeroDuration()) r->poller_ = std::thread([p = r.get()] { p->Poll(); });
  return r;
}

TlsReloader::~TlsReloader() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (poller_.joinable()) poller_.join();
  provider_.reset();  // its refresh thread stops (if no credentials still hold it) before the copy goes
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

absl::Status TlsReloader::Install(const TlsMaterial& m) {
  // The CA first: during a CA rotation the new bundle usually holds both CAs.
  if (!m.ca.empty() && m.ca != current_.ca) {
    if (absl::Status s = WriteFileAtomically(dir_ + "/ca.pem", m.ca); !s.ok()) return s;
  }
  if (!m.cert.empty() && (m.cert != current_.cert || m.key != current_.key)) {
    // One file holds both (each PEM reader skips the other's block), so one rename swaps both.
    if (absl::Status s = WriteFileAtomically(dir_ + "/identity.pem", absl::StrCat(m.cert, "\n", m.key)); !s.ok()) {
      return s;
    }
  }
  current_ = m;
  warned_ = false;
  if (cert_expiry_ != nullptr) cert_expiry_->Set(Seconds(m.cert_expiry));
  if (ca_expiry_ != nullptr) ca_expiry_->Set(Seconds(m.ca_expiry));
  return absl::OkStatus();
}

void TlsReloader::WarnIfExpiringSoon() {
  if (warned_) return;
  const absl::Time now = absl::Now();
  const struct {
    const char* what;
    const std::string& path;
    absl::Time expiry;
  } files[] = {{"cert_file", options_.cert_file, current_.cert_expiry},
               {"ca_file", options_.ca_file, current_.ca_expiry}};
  for (const auto& f : files) {
    if (f.path.empty() || f.expiry - now > reload_.expiry_warning) continue;
    warned_ = true;
    std::fprintf(stderr, "%s: warning: TLS %s %s expires at %s (in %s, within --tls-expiry-warning %s): rotate it\n",
                 reload_.name.c_str(), f.what, f.path.c_str(), FormatUtc(f.expiry).c_str(),
                 absl::FormatDuration(absl::Trunc(f.expiry - now, absl::Minutes(1))).c_str(),
                 absl::FormatDuration(reload_.expiry_warning).c_str());
  }
}

absl::Status TlsReloader::Reload(bool verbose) {
  if (!enabled()) return absl::OkStatus();
  absl::MutexLock serial(&reload_mu_);
  absl::StatusOr<TlsMaterial> m = LoadTlsMaterial(options_, server_);
  absl::MutexLock lock(&mu_);
  absl::Status status = m.status();
  if (m.ok()) {
    const bool changed = m->cert != current_.cert || m->key != current_.key || m->ca != current_.ca;
    if (changed) status = Install(*m);
    if (status.ok()) {
      last_error_.clear();
      if (changed || verbose) {
        std::fprintf(stderr, "%s: TLS material %s (%s%s%s)\n", reload_.name.c_str(),
                     changed ? "reloaded; new connections use it" : "unchanged",
                     options_.cert_file.empty() ? "" : absl::StrCat("cert_file ", options_.cert_file, " expires at ",
                                                                    FormatUtc(current_.cert_expiry)).c_str(),
                     !options_.cert_file.empty() && !options_.ca_file.empty() ? ", " : "",
                     options_.ca_file.empty() ? "" : absl::StrCat("ca_file ", options_.ca_file, " expires at ",
                                                                  FormatUtc(current_.ca_expiry)).c_str());
      }
      WarnIfExpiringSoon();
      return absl::OkStatus();
    }
  }
  if (verbose || status.ToString() != last_error_) {
    std::fprintf(stderr, "%s: error: cannot reload TLS material, keeping the previous one: %s\n",
                 reload_.name.c_str(), status.ToString().c_str());
  }
  last_error_ = status.ToString();
  return status;
}

void TlsReloader::Poll() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), reload_.refresh_interval)) return;
    }
    (void)Reload(/*verbose=*/false);
  }
}

std::shared_ptr<grpc::ServerCredentials> TlsReloader::ServerCredentials() const {
  if (!enabled()) return grpc::InsecureServerCredentials();
  grpc::experimental::TlsServerCredentialsOptions opts(provider_);
  opts.watch_identity_key_cert_pairs();
  if (!options_.ca_file.empty()) opts.watch_root_certs();
  opts.set_cert_request_type(ClientCertRequest(options_));
  return grpc::experimental::TlsServerCredentials(opts);
}

std::shared_ptr<grpc::ChannelCredentials> TlsReloader::ChannelCredentials() const {
  if (!enabled()) return grpc::InsecureChannelCredentials();
  grpc::experimental::TlsChannelCredentialsOptions opts;
  opts.set_certificate_provider(provider_);
  if (!options_.ca_file.empty()) opts.watch_root_certs();  // else the system roots
  if (!options_.cert_file.empty()) opts.watch_identity_key_cert_pairs();
  opts.set_verify_server_certs(true);
  return grpc::experimental::TlsCredentials(opts);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> TlsReloader::Channel(const std::string& target) const {
  std::shared_ptr<grpc::ChannelCredentials> creds = ChannelCredentials();
  if (creds == nullptr) return absl::InternalError("TLS: gRPC refused the channel credentials");
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(target, creds, ChannelArgs(options_));
  if (channel == nullptr) return absl::InternalError(absl::StrCat("cannot create a channel to ", target));
  return channel;
}

}  // namespace caliber::auth
