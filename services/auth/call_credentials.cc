#include "services/auth/call_credentials.h"

#include <grpcpp/client_context.h>
#include <grpcpp/security/credentials.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"

namespace caliber::auth {
namespace {

class BearerTokenPlugin final : public grpc::MetadataCredentialsPlugin {
 public:
  explicit BearerTokenPlugin(std::string token) : header_("Bearer " + std::move(token)) {}

  // The value is precomputed; nothing blocks, so gRPC may run this inline.
  bool IsBlocking() const override { return false; }
  const char* GetType() const override { return "caliber.bearer"; }

  grpc::Status GetMetadata(grpc::string_ref /*service_url*/, grpc::string_ref /*method_name*/,
                           const grpc::AuthContext& /*channel_auth_context*/,
                           std::multimap<grpc::string, grpc::string>* metadata) override {
    metadata->emplace("authorization", header_);
    return grpc::Status::OK;
  }

  // Never the token: debug strings end up in logs.
  grpc::string DebugString() override { return "caliber bearer token credentials"; }

 private:
  const std::string header_;
};

}  // namespace

std::shared_ptr<grpc::CallCredentials> BearerTokenCredentials(std::string token) {
  return BearerTokenCredentials(std::move(token), /*allow_insecure_channel=*/false);
}

std::shared_ptr<grpc::CallCredentials> BearerTokenCredentials(std::string token,
                                                              bool allow_insecure_channel) {
  return grpc::experimental::MetadataCredentialsFromPlugin(
      std::make_unique<BearerTokenPlugin>(std::move(token)),
      allow_insecure_channel ? GRPC_SECURITY_NONE : GRPC_PRIVACY_AND_INTEGRITY);
}

void AddBearerToken(grpc::ClientContext& context, const std::string& token) {
  context.AddMetadata("authorization", "Bearer " + token);
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  constexpr size_t kMaxBytes = 64 << 10;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("token file ", path, ": does not exist"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("token file ", path, ": cannot be read"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad())
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, ": read error"));
  std::string text = std::move(buffer).str();
  if (text.size() > kMaxBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file ", path, ": larger than ", kMaxBytes, " bytes"));
  }
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && is_space(text[begin])) ++begin;
  while (end > begin && is_space(text[end - 1])) --end;
  if (begin == end) return absl::InvalidArgumentError(absl::StrCat("token file ", path, ": empty"));
  for (size_t i = begin; i < end; ++i) {
    const char c = text[i];
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat("token file ", path,
                       ": the token may hold only visible ASCII characters (no inner whitespace)"));
    }
  }
  return text.substr(begin, end - begin);
}

}  // namespace caliber::auth
