// Client side of bearer-token auth: how workers and the CLI present their token to the
// coordinator ("authorization: Bearer <token>" metadata, checked by services/auth/tenants.h).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace grpc {
class CallCredentials;
class ClientContext;
}  // namespace grpc

namespace caliber::auth {

// Per-call credentials adding "authorization: Bearer <token>" to every call of a channel or
// context they are attached to. gRPC sends them only over a channel with privacy and integrity
// (TLS); on an insecure channel gRPC fails the call on the client with Unauthenticated
// ("... does not have a sufficient security level ...") rather than leak the token.
std::shared_ptr<grpc::CallCredentials> BearerTokenCredentials(std::string token);
// Same; with allow_insecure_channel the token is also sent over plaintext channels (loopback,
// or a network already encrypted by a service mesh). The token then travels in the clear.
std::shared_ptr<grpc::CallCredentials> BearerTokenCredentials(std::string token,
                                                              bool allow_insecure_channel);

// Sets the metadata on one call directly; works on any channel (the caller decides whether the
// channel is fit to carry the token). Call before starting the RPC.
void AddBearerToken(grpc::ClientContext& context, const std::string& token);

// The token stored in a file (a mounted Secret), surrounding whitespace trimmed. NotFound /
// InvalidArgument name the file, never its content; an empty token or one with inner
// whitespace or control characters is InvalidArgument.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace caliber::auth
