// TLS and mutual TLS for the gRPC endpoints (coordinator server, worker and CLI channels). One
// options struct serves both sides; empty options mean plaintext, the embedded local default.
#pragma once

#include <memory>
#include <string>

#include <grpc/grpc_security_constants.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace grpc {
class Channel;
class ChannelCredentials;
class ServerCredentials;
}  // namespace grpc

namespace caliber::auth {

struct TlsOptions {
  std::string cert_file;  // PEM certificate chain of this endpoint
  std::string key_file;   // PEM private key
  std::string ca_file;    // PEM CA bundle to verify the peer ("" on a client: system roots)
  bool require_client_cert = false;  // server side: mTLS (ca_file required)
  std::string server_name_override;  // client side: expected server name (tests, IP targets)
  bool enabled() const;              // any file set
};

// The PEM material of `options`, read and checked at one moment: every file parses, the key
// matches the certificate, and every certificate is valid at `now` (expired or not yet valid ->
// FailedPrecondition naming the file and the dates). `server`: cert_file/key_file required.
struct TlsMaterial {
  std::string cert, key, ca;  // "" when not configured
  absl::Time cert_expiry = absl::InfiniteFuture();  // earliest not_after in cert_file
  absl::Time ca_expiry = absl::InfiniteFuture();    // earliest not_after in ca_file
};
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsOptions& options, bool server,
                                            absl::Time now = absl::Now());

// How a server with `options` asks for client certificates.
grpc_ssl_client_certificate_request_type ClientCertRequest(const TlsOptions& options);

// Server name override (when set and TLS is on) and the 64 MiB receive limit.
grpc::ChannelArguments ChannelArgs(const TlsOptions& options);

// Static credentials, read once (the CLI). Daemons use TlsReloader (tls_reloader.h).
// Empty options -> grpc::InsecureServerCredentials(). Enabled: cert_file and key_file are
// required (and must match each other); with ca_file a client certificate, if presented, must
// chain to it; with require_client_cert (needs ca_file) one must be presented (mTLS).
// Missing files -> NotFound, unreadable or malformed ones -> InvalidArgument, naming the file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options);

// Empty options -> insecure. ca_file verifies the server (system roots when empty);
// cert_file + key_file (both or neither) are presented for mTLS.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsOptions& options);

// A channel to `target` with MakeChannelCredentials(options), checking the server's certificate
// against server_name_override (when set) instead of the target's host name.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const TlsOptions& options);

}  // namespace caliber::auth
