// Flags both daemons share that bound what peers may hold open on the gRPC port, applied to a
// grpc::ServerBuilder:
//   --max-concurrent-streams  HTTP/2 streams one connection may have open at once (the
//                             SETTINGS_MAX_CONCURRENT_STREAMS the server announces; calls beyond
//                             it wait on the client until one ends). Default 2048: the watch
//                             benchmark holds 10,000 WatchQuantJob streams over 8 connections.
//   --max-inflight-mib        gRPC's memory quota for the port (grpc::ResourceQuota): buffers of
//                             every connection together. Near it gRPC shrinks flow-control
//                             windows, then closes connections to get memory back.
//   --grpc-handshake-timeout-ms  a connection that has not finished its HTTP/2 (and TLS)
//                             handshake this long after it opened is closed.
#pragma once

#include "absl/status/status.h"
#include "grpcpp/server_builder.h"

namespace caliber::daemon {

// InvalidArgument naming the flag when one is out of range; otherwise sets them on `builder`
// along with the receive limit `max_receive_bytes` (the largest message this port accepts).
absl::Status ApplyServerLimits(grpc::ServerBuilder& builder, int max_receive_bytes);

}  // namespace caliber::daemon
