#include "services/auth/tenants.h"

#include <grpcpp/server_context.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "core/util/json_depth.h"
#include "nlohmann/json.hpp"
#include "services/auth/token_digest.h"

namespace caliber::auth {
namespace {

using json = nlohmann::json;

// Debian's abseil has its own absl::string_view; StrCat does not take std::string_view.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr size_t kMaxFileBytes = 4 << 20;
constexpr int kMaxJsonDepth = 8;
constexpr size_t kMaxTokenBytes = 4096;
constexpr std::string_view kDigestPrefix = "sha256:";

using Digest = TokenDigest;
Digest Sha256(std::string_view data) { return Sha256Digest(data); }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Visible ASCII only: a token travels in an HTTP/2 header after "Bearer ", where whitespace
// would split it and control bytes are not allowed.
bool IsTokenChar(char c) { return c >= 0x21 && c <= 0x7e; }

bool IsSchemeChar(char c, bool first) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (first) return alpha;
  return alpha || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

std::string Describe(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "a number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "an unsupported value";
  }
}

absl::Status CheckKeys(const json& object, std::string_view where,
                       std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(Sv(where), ": unknown key \"", key, "\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Digest> ParseToken(const json& value, std::string_view where) {
  if (!value.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(where), ": must be a string, got ", Describe(value)));
  }
  const std::string& token = value.get_ref<const std::string&>();
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat(Sv(where), ": empty token"));
  if (token.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(where), ": token longer than ", kMaxTokenBytes, " bytes"));
  }
  for (char c : token) {
    if (!IsTokenChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat(Sv(where), ": token may hold only visible ASCII characters (no spaces)"));
    }
  }
  if (!std::string_view(token).starts_with(kDigestPrefix)) return Sha256(token);
  const std::string_view hex = std::string_view(token).substr(kDigestPrefix.size());
  Digest digest{};
  if (hex.size() != 2 * digest.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(where), ": \"sha256:\" must be followed by 64 hex digits, got ", hex.size(),
                     " characters"));
  }
  for (size_t i = 0; i < digest.size(); ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(Sv(where), ": \"sha256:\" must be followed by 64 hex digits"));
    }
    digest[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return digest;
}

absl::StatusOr<std::vector<std::string>> ParsePrefixes(const json& tenant, std::string_view key,
                                                       std::string_view where) {
  std::vector<std::string> out;
  const auto it = tenant.find(key);
  if (it == tenant.end()) return out;
  if (!it->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(where), ".", Sv(key), ": must be an array, got ", Describe(*it)));
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const json& p = (*it)[i];
    const std::string here = absl::StrCat(Sv(where), ".", Sv(key), "[", i, "]");
    if (!p.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(here, ": must be a string, got ", Describe(p)));
    }
    const std::string& prefix = p.get_ref<const std::string&>();
    if (!prefix.empty()) {
      if (!IsSafeUri(prefix)) {
        return absl::InvalidArgumentError(absl::StrCat(
            here, ": \"", prefix,
            "\" is not a plain scheme://authority/path URI (no '.', '..' or empty segments, no "
            "backslashes or encoded '.', '/', '\\', '%')"));
      }
      if (prefix.back() != '/') {
        return absl::InvalidArgumentError(
            absl::StrCat(here, ": \"", prefix, "\" must end in '/' (otherwise it also grants \"",
                         prefix, "-other/...\")"));
      }
    }
    out.push_back(prefix);
  }
  return out;
}

bool HasPrefix(const std::vector<std::string>& prefixes, std::string_view uri) {
  for (const std::string& p : prefixes) {
    if (uri.starts_with(p)) return true;
  }
  return false;
}

}  // namespace

bool IsSafeUri(std::string_view uri) {
  const size_t sep = uri.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  for (size_t i = 0; i < sep; ++i) {
    if (!IsSchemeChar(uri[i], i == 0)) return false;
  }
  for (size_t i = 0; i < uri.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(uri[i]);
    if (c < 0x20 || c == 0x7f || c == '\\') return false;
    if (c == '%') {
      // A malformed escape is refused too: what a backend makes of it is anyone's guess.
      if (i + 2 >= uri.size()) return false;
      const int hi = HexValue(uri[i + 1]);
      const int lo = HexValue(uri[i + 2]);
      if (hi < 0 || lo < 0) return false;
      const int decoded = hi * 16 + lo;
      if (decoded == '.' || decoded == '/' || decoded == '\\' || decoded == '%') return false;
    }
  }
  const std::string_view rest = uri.substr(sep + 3);
  const size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  if (authority == "." || authority == "..") return false;
  if (slash == std::string_view::npos) return true;
  // Segments of the path after the authority; a trailing '/' (a "directory" URI) is fine.
  std::string_view path = rest.substr(slash + 1);
  while (true) {
    const size_t next = path.find('/');
    const std::string_view segment = path.substr(0, next);
    if (segment == "." || segment == "..") return false;
    if (next == std::string_view::npos) return true;
    if (segment.empty()) return false;
    path.remove_prefix(next + 1);
  }
}

bool Tenant::CanRead(std::string_view uri) const {
  return IsSafeUri(uri) && (HasPrefix(read_prefixes, uri) || HasPrefix(write_prefixes, uri));
}

bool Tenant::CanWrite(std::string_view uri) const {
  return IsSafeUri(uri) && HasPrefix(write_prefixes, uri);
}

absl::StatusOr<std::unique_ptr<TenantRegistry>> TenantRegistry::LoadFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("tokens file ", path, ": does not exist"));
  }
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("tokens file ", path, ": not a regular file"));
  }
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokens file ", path, ": cannot stat: ", ec.message()));
  }
  if (size > kMaxFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokens file ", path, ": ", size, " bytes is too large (limit ", kMaxFileBytes, ")"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("tokens file ", path, ": cannot be read"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat("tokens file ", path, ": read error"));
  }
  absl::StatusOr<std::unique_ptr<TenantRegistry>> registry = Parse(text.str());
  if (!registry.ok()) {
    return absl::Status(registry.status().code(),
                        absl::StrCat("tokens file ", path, ": ", registry.status().message()));
  }
  return registry;
}

absl::StatusOr<std::unique_ptr<TenantRegistry>> TenantRegistry::Parse(std::string_view text) {
  if (text.size() > kMaxFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        text.size(), " bytes is too large for a tokens file (limit ", kMaxFileBytes, ")"));
  }
  if (!caliber::JsonNestingWithin(text, kMaxJsonDepth)) {
    return absl::InvalidArgumentError(absl::StrCat("nests deeper than ", kMaxJsonDepth, " levels"));
  }
  const json root = json::parse(text.begin(), text.end(), /*cb=*/nullptr,
                                /*allow_exceptions=*/false);
  if (root.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("must be a JSON object, got ", Describe(root)));
  }
  if (absl::Status s = CheckKeys(root, "top level", {"tenants"}); !s.ok()) return s;
  const auto tenants = root.find("tenants");
  if (tenants == root.end()) return absl::InvalidArgumentError("missing \"tenants\"");
  if (!tenants->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"tenants\" must be an array, got ", Describe(*tenants)));
  }

  auto registry = std::unique_ptr<TenantRegistry>(new TenantRegistry());
  std::set<std::string> names;
  for (size_t t = 0; t < tenants->size(); ++t) {
    const json& entry = (*tenants)[t];
    std::string where = absl::StrCat("tenants[", t, "]");
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": must be an object, got ", Describe(entry)));
    }
    if (absl::Status s =
            CheckKeys(entry, where, {"name", "tokens", "read_prefixes", "write_prefixes"});
        !s.ok()) {
      return s;
    }
    const auto name = entry.find("name");
    if (name == entry.end())
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing \"name\""));
    if (!name->is_string() || name->get_ref<const std::string&>().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".name: must be a non-empty string, got ", Describe(*name)));
    }
    Tenant tenant;
    tenant.name = name->get<std::string>();
    where = absl::StrCat(where, " (\"", tenant.name, "\")");
    if (!names.insert(tenant.name).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": duplicate tenant name"));
    }

    const auto tokens = entry.find("tokens");
    if (tokens == entry.end()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing \"tokens\""));
    }
    if (!tokens->is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".tokens: must be an array, got ", Describe(*tokens)));
    }
    for (size_t k = 0; k < tokens->size(); ++k) {
      const std::string here = absl::StrCat(where, ".tokens[", k, "]");
      absl::StatusOr<Digest> digest = ParseToken((*tokens)[k], here);
      if (!digest.ok()) return digest.status();
      for (const TokenEntry& existing : registry->tokens_) {
        if (existing.digest == *digest) {
          const std::string& owner = existing.tenant < registry->tenants_.size()
                                         ? registry->tenants_[existing.tenant].name
                                         : tenant.name;
          return absl::InvalidArgumentError(absl::StrCat(
              here, ": the same token (or its sha256 digest) is already given to tenant \"", owner,
              "\"; a token must identify exactly one tenant"));
        }
      }
      registry->tokens_.push_back({*digest, registry->tenants_.size()});
    }

    absl::StatusOr<std::vector<std::string>> reads = ParsePrefixes(entry, "read_prefixes", where);
    if (!reads.ok()) return reads.status();
    absl::StatusOr<std::vector<std::string>> writes = ParsePrefixes(entry, "write_prefixes", where);
    if (!writes.ok()) return writes.status();
    tenant.read_prefixes = std::move(*reads);
    tenant.write_prefixes = std::move(*writes);
    registry->tenants_.push_back(std::move(tenant));
  }
  return registry;
}

std::unique_ptr<TenantRegistry> TenantRegistry::AllowAll() {
  auto registry = std::unique_ptr<TenantRegistry>(new TenantRegistry());
  registry->allow_all_ = true;
  registry->tenants_.push_back(Tenant{"default", {""}, {""}});
  return registry;
}

absl::StatusOr<const Tenant*> TenantRegistry::Authenticate(std::string_view authorization) const {
  if (allow_all_) return &tenants_.front();
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing \"authorization\" metadata (expected \"Bearer <token>\")");
  }
  const size_t space = authorization.find(' ');
  std::string_view scheme = authorization.substr(0, space);
  bool bearer = scheme.size() == 6;
  for (size_t i = 0; bearer && i < scheme.size(); ++i) {
    bearer = (scheme[i] | 0x20) == "bearer"[i];
  }
  if (!bearer || space == std::string_view::npos) {
    return absl::UnauthenticatedError(
        "\"authorization\" metadata is not a Bearer token (expected \"Bearer <token>\")");
  }
  const std::string_view token = authorization.substr(space + 1);
  bool well_formed = !token.empty() && token.size() <= kMaxTokenBytes;
  for (size_t i = 0; well_formed && i < token.size(); ++i) well_formed = IsTokenChar(token[i]);
  if (!well_formed) {
    return absl::UnauthenticatedError(
        "malformed Bearer token (expected \"Bearer <token>\", the token visible ASCII without "
        "spaces)");
  }
  // Every entry is compared, match or not, so timing reveals neither whether nor where a token
  // matched; comparing digests also hides the length of the real tokens.
  const Digest digest = Sha256(token);
  const Tenant* found = nullptr;
  for (const TokenEntry& entry : tokens_) {
    const bool equal = DigestsEqual(entry.digest, digest);
    if (equal) found = &tenants_[entry.tenant];
  }
  if (found == nullptr) return absl::UnauthenticatedError("unknown Bearer token");
  return found;
}

absl::StatusOr<const Tenant*> AuthenticateCall(const TenantRegistry& registry,
                                               const grpc::ServerContextBase& context) {
  if (registry.allow_all()) return registry.Authenticate("");
  const auto& metadata = context.client_metadata();
  const auto [begin, end] = metadata.equal_range("authorization");
  if (begin == end) return registry.Authenticate("");
  if (std::next(begin) != end) {
    return absl::UnauthenticatedError("more than one \"authorization\" metadata entry");
  }
  return registry.Authenticate(std::string_view(begin->second.data(), begin->second.size()));
}

absl::StatusOr<const Tenant*> AuthenticateCall(const TenantRegistry& registry,
                                               const grpc::ServerContext& context) {
  return AuthenticateCall(registry, static_cast<const grpc::ServerContextBase&>(context));
}

}  // namespace caliber::auth
