#include "services/auth/call_admission.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>

#include "absl/strings/str_cat.h"

namespace caliber::auth {
namespace {

absl::string_view View(const grpc_slice& s) {
  return absl::string_view(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(s)), GRPC_SLICE_LENGTH(s));
}

// The service part of "/pkg.Service/Method", with both slashes: "/pkg.Service/".
absl::string_view ServiceOf(absl::string_view path) {
  if (path.size() < 2 || path[0] != '/') return {};
  const size_t slash = path.find('/', 1);
  return slash == absl::string_view::npos ? absl::string_view() : path.substr(0, slash + 1);
}

// gRPC core's processor interface, for the plaintext credentials (the C++ wrapper for it exists
// only inside SecureServerCredentials).
void ProcessInCore(void* state, grpc_auth_context* /*context*/, const grpc_metadata* md, size_t num_md,
                   grpc_process_auth_metadata_done_cb done, void* user_data) {
  const auto& admission = *static_cast<std::shared_ptr<CallAdmission>*>(state);
  absl::string_view path, authorization;
  int authorizations = 0;
  for (size_t i = 0; i < num_md; ++i) {
    const absl::string_view key = View(md[i].key);
    if (key == ":path") path = View(md[i].value);
    if (key == "authorization") {
      authorization = View(md[i].value);
      ++authorizations;
    }
  }
  const grpc::Status s = admission->Admit(path, authorization, authorizations);
  done(user_data, nullptr, 0, nullptr, 0, static_cast<grpc_status_code>(s.error_code()),
       s.ok() ? nullptr : s.error_message().c_str());
}

void DestroyInCore(void* state) { delete static_cast<std::shared_ptr<CallAdmission>*>(state); }

// grpc::InsecureServerCredentials() with the admission processor (its own
// SetAuthMetadataProcessor aborts). Overrides ServerCredentials' private port hook, which
// grpc::Server calls to bind.
class PlaintextAdmittingCredentials final : public grpc::ServerCredentials {
 public:
  explicit PlaintextAdmittingCredentials(std::shared_ptr<CallAdmission> admission)
      : admission_(std::move(admission)) {}
  // The admission given at construction is this credential's processor.
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>& /*processor*/) override {}

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    grpc_server_credentials* creds = grpc_insecure_server_credentials_create();
    grpc_server_credentials_set_auth_metadata_processor(
        creds, {ProcessInCore, DestroyInCore, new std::shared_ptr<CallAdmission>(admission_)});
    const int port = grpc_server_add_http2_port(server, addr.c_str(), creds);
    grpc_server_credentials_release(creds);
    return port;
  }
  std::shared_ptr<CallAdmission> admission_;
};

}  // namespace

void CallAdmission::AddService(absl::string_view service, Check check) {
  services_[absl::StrCat("/", service, "/")] = std::move(check);
}

grpc::Status CallAdmission::Admit(absl::string_view path, absl::string_view authorization,
                                  int authorization_count) const {
  auto it = services_.find(ServiceOf(path));
  // Never echo the path: it is the caller's bytes.
  if (it == services_.end()) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "unknown service");
  if (authorization_count > 1) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "more than one authorization header");
  }
  return it->second(authorization);
}

grpc::Status CallAdmission::Process(const InputMetadata& auth_metadata, grpc::AuthContext* /*context*/,
                                    OutputMetadata* /*consumed_auth_metadata*/,
                                    OutputMetadata* /*response_metadata*/) {
  absl::string_view path, authorization;
  if (auto p = auth_metadata.find(":path"); p != auth_metadata.end()) {
    path = absl::string_view(p->second.data(), p->second.size());
  }
  const auto [first, last] = auth_metadata.equal_range("authorization");
  int authorizations = 0;
  for (auto a = first; a != last; ++a, ++authorizations) {
    authorization = absl::string_view(a->second.data(), a->second.size());
  }
  return Admit(path, authorization, authorizations);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> AdmittingCredentials(
    const TlsOptions& tls, std::shared_ptr<CallAdmission> admission) {
  if (!tls.enabled() && !tls.require_client_cert) {
    return std::make_shared<PlaintextAdmittingCredentials>(std::move(admission));
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = MakeServerCredentials(tls);
  if (!creds.ok()) return creds.status();
  (*creds)->SetAuthMetadataProcessor(std::move(admission));
  return creds;
}

}  // namespace caliber::auth
