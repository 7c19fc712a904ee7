#include "services/runtime/server_limits.h"

#include "absl/flags/flag.h"
#include "grpcpp/resource_quota.h"

ABSL_FLAG(int, max_concurrent_streams, 2048, "HTTP/2 streams (calls) one connection may have open at once; 1..1000000");
ABSL_FLAG(int, max_inflight_mib, 2048,
          "memory gRPC may use for all connections' buffers together (MiB); near it windows shrink and "
          "connections are closed; 64..1048576");
ABSL_FLAG(int, grpc_handshake_timeout_ms, 10000,
          "close a connection whose TLS/HTTP2 handshake is not done after this long; 100..600000");

namespace caliber::daemon {

absl::Status ApplyServerLimits(grpc::ServerBuilder& builder, int max_receive_bytes) {
  const int streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  const int inflight_mib = absl::GetFlag(FLAGS_max_inflight_mib);
  const int handshake_ms = absl::GetFlag(FLAGS_grpc_handshake_timeout_ms);
  if (streams < 1 || streams > 1000000) {
    return absl::InvalidArgumentError("--max-concurrent-streams must be 1..1000000");
  }
  if (inflight_mib < 64 || inflight_mib > 1048576) {
    return absl::InvalidArgumentError("--max-inflight-mib must be 64..1048576");
  }
  if (handshake_ms < 100 || handshake_ms > 600000) {
    return absl::InvalidArgumentError("--grpc-handshake-timeout-ms must be 100..600000");
  }
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, streams);
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, handshake_ms);
  grpc::ResourceQuota quota("caliber-grpc");
  quota.Resize(static_cast<size_t>(inflight_mib) << 20);
  builder.SetResourceQuota(quota);
  builder.SetMaxReceiveMessageSize(max_receive_bytes);
  return absl::OkStatus();
}

}  // namespace caliber::daemon
