// The listening TCP socket of the /metrics endpoint: parses the address flag, resolves it and
// binds. Kept apart from the HTTP server so address forms and bind errors stay ours (precise
// statuses naming the address) whatever library serves the connections.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace caliber::metrics {

// A bound, listening, non-blocking, close-on-exec socket and its real port.
struct ListenSocket {
  int fd = -1;
  int port = 0;
};

// `address`: "HOST:PORT" ("127.0.0.1:9090", "0.0.0.0:9090", "localhost:9090"), "[IPv6]:PORT" or
// just "PORT" (all IPv4 interfaces); port 0 picks an ephemeral one. Malformed address ->
// InvalidArgument; cannot resolve or bind (e.g. port in use) -> Unavailable naming the address.
// `backlog`: connections the kernel queues before they are accepted.
absl::StatusOr<ListenSocket> Listen(const std::string& address, int backlog);

}  // namespace caliber::metrics
