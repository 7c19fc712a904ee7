// The shared secret between a coordinator and its workers (--worker-token-file): every call
// among them carries "authorization: Bearer <token>". Checked on the coordinator's
// CoordinatorService and on every worker's WorkerService, so a process that can reach a worker
// port cannot push activations into a job without the token (mTLS, when on, adds a second
// check at the transport).
#pragma once

#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"

namespace caliber::auth {

// OK when `token` is empty (no token configured) or the call carries exactly one
// "authorization" entry equal to "Bearer <token>"; UNAUTHENTICATED otherwise. A call with
// several entries is refused whatever they hold (which one a proxy honoured would be
// ambiguous — the API token check refuses them too). Both sides are compared as SHA-256
// digests in constant time (token_digest.h), so neither the token's length nor a matching
// prefix shows in the timing.
grpc::Status CheckWorkerAuthorization(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                                      const std::string& token);
grpc::Status CheckWorkerToken(const grpc::ServerContextBase& context, const std::string& token);
// Same, given the value of the call's one "authorization" header ("" when absent): for the
// admission check at the headers (services/auth/call_admission.h counts the entries).
grpc::Status CheckWorkerAuthorization(absl::string_view authorization, const std::string& token);

}  // namespace caliber::auth
