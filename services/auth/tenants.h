// Tenants and their bearer tokens: who may call the service, and which storage URIs each caller
// may read or write. A tenant is what a token authenticates to; the coordinator checks every
// job's model, calibration and output URIs against the tenant's prefixes before touching them.
//
// Tokens file (JSON; unknown keys are errors so that a typo never widens or narrows access
// silently):
//   {"tenants": [{"name": "team-a",
//                 "tokens": ["s3cr3t-token", "sha256:<64 hex digits>"],
//                 "read_prefixes": ["s3://models/shared/"],
//                 "write_prefixes": ["s3://out/team-a/"]}]}
// A token is either the secret itself or "sha256:" + the hex SHA-256 of it, so the file need not
// hold secrets. Prefixes are compared byte for byte with the URI (nothing is normalized), must
// end in '/' (so "s3://b/team-a/" cannot also grant "s3://b/team-ab/...") or be "" (everything).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace grpc {
class ServerContext;
class ServerContextBase;
}  // namespace grpc

namespace caliber::auth {

struct Tenant {
  std::string name;
  std::vector<std::string> read_prefixes;   // URI prefixes, e.g. "s3://bucket/team-a/"
  std::vector<std::string> write_prefixes;  // or "file:///data/a/"; "" matches every URI

  // False for any URI that IsSafeUri rejects, whatever the prefixes. Writers may read back what
  // they wrote, so a write prefix also grants reads.
  bool CanRead(std::string_view uri) const;
  bool CanWrite(std::string_view uri) const;
};

// True when `uri` is "scheme://authority/path" with nothing a backend might resolve to a place the
// raw bytes do not name: no "." or ".." path segment, no empty segment ("//") after the
// authority, no backslash, no control character, and no percent-encoded '.', '/', '\' or '%'
// (so "%2e%2e" and double encodings cannot smuggle a traversal past a prefix check).
bool IsSafeUri(std::string_view uri);

class TenantRegistry {
 public:
  // Reads and parses a tokens file; NotFound / InvalidArgument name the file.
  static absl::StatusOr<std::unique_ptr<TenantRegistry>> LoadFile(const std::string& path);
  // InvalidArgument naming the offending tenant/field: malformed JSON, missing or duplicate
  // tenant name, empty or malformed token, a token (or its digest) given twice, a non-string or
  // unsafe prefix, unknown keys.
  static absl::StatusOr<std::unique_ptr<TenantRegistry>> Parse(std::string_view json);
  // Lets every caller in (with or without a token) as tenant "default" with the prefix "" for
  // reads and writes: the embedded local default when no tokens file is configured.
  static std::unique_ptr<TenantRegistry> AllowAll();

  // `authorization` is the value of the "authorization" metadata: "Bearer <token>" (scheme
  // case-insensitive) -> the tenant. Missing, malformed or unknown -> Unauthenticated; the
  // message never contains the token. Tokens are compared as SHA-256 digests in constant time.
  absl::StatusOr<const Tenant*> Authenticate(std::string_view authorization) const;

  bool allow_all() const { return allow_all_; }
  const std::vector<Tenant>& tenants() const { return tenants_; }

 private:
  using Digest = std::array<unsigned char, 32>;
  struct TokenEntry {
    Digest digest;
    size_t tenant;  // index into tenants_
  };
  TenantRegistry() = default;

  bool allow_all_ = false;
  std::vector<Tenant> tenants_;
  std::vector<TokenEntry> tokens_;
};

// Reads the "authorization" client metadata of the call and authenticates it. More than one
// "authorization" entry is Unauthenticated (which one a proxy honoured would be ambiguous).
absl::StatusOr<const Tenant*> AuthenticateCall(const TenantRegistry& registry,
                                               const grpc::ServerContext& context);
// Same, for callback-API servers (grpc::CallbackServerContext).
absl::StatusOr<const Tenant*> AuthenticateCall(const TenantRegistry& registry,
                                               const grpc::ServerContextBase& context);

}  // namespace caliber::auth
