// What the client commands (submit, watch, status, list, cancel) share: the coordinator
// channel (TLS when --tls-ca is given), the bearer token, and how a job is printed.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "caliber/v1/quant_service.grpc.pb.h"
#include "services/grpc_status.h"

namespace caliber::cli {

struct ServiceClient {
  std::unique_ptr<v1::QuantService::Stub> stub;
  std::string token;
  // A context carrying the token, with a deadline (0: none).
  std::unique_ptr<grpc::ClientContext> Context(int timeout_s = 30) const;
};

// From --coordinator, --token-file, --tls-ca/--tls-cert/--tls-key/--tls-server-name.
absl::StatusOr<ServiceClient> ConnectFromFlags();
// --coordinator.
std::string CoordinatorAddress();
// The names of the flags ConnectFromFlags reads, for the commands' flag lists.
inline constexpr std::string_view kConnectionFlags[] = {
    "coordinator", "token_file", "allow_insecure_token_file_permissions", "tls_ca", "tls_cert", "tls_key",
    "tls_server_name"};

// One line: id, state, phase, layers, stages; and the detailed form for `caliber status`.
std::string JobLine(const v1::QuantJob& job);
std::string JobDetails(const v1::QuantJob& job);

// Exit code for a terminal job (cli/exit_codes.h): 0 succeeded, 1 failed, 3 cancelled.
int ExitCodeOf(const v1::QuantJob& job);

}  // namespace caliber::cli
