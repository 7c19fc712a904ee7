// Admission of every gRPC call at its headers, before gRPC reads a byte of the request message.
//
// Why an AuthMetadataProcessor: gRPC 1.51 buffers a whole request message (whatever length its
// 5-byte prefix declares, up to the receive limit) before any handler or server interceptor
// runs, and the sync API parses it before the handler sees it. The processor runs in the
// server's auth filter on the call's initial metadata; a refused call is failed there, gRPC never
// asks the transport for its message, and all it costs is the HTTP/2 stream window (64 KiB). It
// sees ":path", so each service names the credential its methods need. Secure server
// credentials take a processor through the C++ API; the plaintext ones do not, so
// AdmittingCredentials() builds them from gRPC core's insecure credentials, which run the same
// auth filter.
//
// Handlers still authenticate (they need the tenant); this is the cheap gate in front of them.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "grpcpp/security/auth_metadata_processor.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/status.h"
#include "services/auth/tls.h"

namespace caliber::auth {

class CallAdmission final : public grpc::AuthMetadataProcessor {
 public:
  // Decides from the "authorization" header value ("" when absent): OK or the refusal.
  using Check = std::function<grpc::Status(absl::string_view authorization)>;

  // Calls to "/<service>/<method>" must pass `check`. Calls to services never added are
  // refused (UNIMPLEMENTED) before their message is read.
  void AddService(absl::string_view service, Check check);

  // The decision for one call: its ":path" and "authorization" values. A call carrying more
  // than one "authorization" header is refused (which one a proxy honoured would be ambiguous).
  grpc::Status Admit(absl::string_view path, absl::string_view authorization, int authorization_count) const;

  // grpc::AuthMetadataProcessor: runs inline on gRPC's thread (every check is a hash and a compare).
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata, OutputMetadata* response_metadata) override;

 private:
  std::map<std::string, Check, std::less<>> services_;  // "/caliber.v1.QuantService/" -> check
};

// Server credentials (TLS per `tls`, plaintext without it) that run `admission` on every call.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> AdmittingCredentials(
    const TlsOptions& tls, std::shared_ptr<CallAdmission> admission);

}  // namespace caliber::auth
