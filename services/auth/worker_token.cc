#include "services/auth/worker_token.h"

#include <openssl/crypto.h>

namespace caliber::auth {

grpc::Status CheckWorkerToken(const grpc::ServerContext& context, const std::string& token) {
  if (token.empty()) return grpc::Status::OK;
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return CheckWorkerAuthorization("", token);
  return CheckWorkerAuthorization(absl::string_view(it->second.data(), it->second.size()), token);
}

grpc::Status CheckWorkerAuthorization(absl::string_view authorization, const std::string& token) {
  if (token.empty()) return grpc::Status::OK;
  const std::string expected = "Bearer " + token;
  if (authorization.size() != expected.size() ||
      CRYPTO_memcmp(authorization.data(), expected.data(), expected.size()) != 0) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong worker token");
  }
  return grpc::Status::OK;
}

}  // namespace caliber::auth
