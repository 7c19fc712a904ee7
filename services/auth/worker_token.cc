#include "services/auth/worker_token.h"

#include <openssl/crypto.h>

namespace caliber::auth {

grpc::Status CheckWorkerToken(const grpc::ServerContext& context, const std::string& token) {
  if (token.empty()) return grpc::Status::OK;
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  const std::string expected = "Bearer " + token;
  if (it == md.end() || it->second.size() != expected.size() ||
      CRYPTO_memcmp(it->second.data(), expected.data(), expected.size()) != 0) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong worker token");
  }
  return grpc::Status::OK;
}

}  // namespace caliber::auth
