#include "services/auth/worker_token.h"

#include <iterator>
#include <string_view>

#include "services/auth/token_digest.h"

namespace caliber::auth {
namespace {

grpc::Status Compare(bool present, std::string_view presented, const std::string& token) {
  // Hashed every time (no early return on a missing entry or another length).
  const bool equal = DigestsEqual(Sha256Digest(presented), Sha256Digest("Bearer " + token));
  if (!present || !equal) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong worker token");
  return grpc::Status::OK;
}

}  // namespace

grpc::Status CheckWorkerAuthorization(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                                      const std::string& token) {
  if (token.empty()) return grpc::Status::OK;
  const auto [begin, end] = metadata.equal_range("authorization");
  if (begin != end && std::next(begin) != end) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "more than one \"authorization\" metadata entry");
  }
  const std::string_view presented =
      begin == end ? std::string_view() : std::string_view(begin->second.data(), begin->second.size());
  return Compare(begin != end, presented, token);
}

grpc::Status CheckWorkerAuthorization(absl::string_view authorization, const std::string& token) {
  if (token.empty()) return grpc::Status::OK;
  return Compare(!authorization.empty(), std::string_view(authorization.data(), authorization.size()), token);
}

grpc::Status CheckWorkerToken(const grpc::ServerContextBase& context, const std::string& token) {
  return CheckWorkerAuthorization(context.client_metadata(), token);
}

}  // namespace caliber::auth
