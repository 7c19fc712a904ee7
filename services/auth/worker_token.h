// The shared secret between a coordinator and its workers (--worker-token-file): every call
// among them carries "authorization: Bearer <token>". Checked on the coordinator's
// CoordinatorService and on every worker's WorkerService, so a process that can reach a worker
// port cannot push activations into a job without the token (mTLS, when on, adds a second
// check at the transport).
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"

namespace caliber::auth {

// OK when `token` is empty (no token configured) or the call carries it; UNAUTHENTICATED
// otherwise. Constant-time comparison.
grpc::Status CheckWorkerToken(const grpc::ServerContext& context, const std::string& token);
// Same, given the value of the call's "authorization" header ("" when absent): for the
// admission check at the headers (services/auth/call_admission.h).
grpc::Status CheckWorkerAuthorization(absl::string_view authorization, const std::string& token);

}  // namespace caliber::auth
