// TLS and mutual TLS for the gRPC endpoints (coordinator server, worker and CLI channels). One
// options struct serves both sides; empty options mean plaintext, the embedded local default.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

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
