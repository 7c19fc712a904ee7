// The /metrics HTTP endpoint Prometheus scrapes. Each daemon owns one prometheus::Registry, hands
// it to its *Metrics classes and serves it here.
//
// Served by libmicrohttpd: one internal thread polls every connection with epoll, so an idle or
// slow client costs a socket and a bounded memory pool, never a thread, and cannot delay another
// client's scrape (the previous hand-written server answered one connection at a time, so 200
// idle connections made a real scrape time out). Idle connections are closed after
// idle_timeout_s; connections are capped in total and per client IP.
//
// Why not prometheus::Exposer: it runs civetweb, whose threads get a fixed 100 KB stack. glibc
// carves static TLS out of that stack, and OpenBLAS (linked by every daemon through caliber_core)
// alone has 60 KB of it; OpenBLAS also loads libquadmath, whose printf hooks send every printf
// down glibc's stack-hungry positional path. Together a scrape overflowed the stack inside
// civetweb's mg_printf and crashed the daemon. libmicrohttpd's thread is given an explicit 8 MiB
// stack for the same reason (see metrics_server.cc).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

struct MHD_Daemon;

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace caliber::metrics {

// Bounds on what clients of /metrics may hold. Each must be in [1, its documented maximum];
// otherwise Start() -> InvalidArgument.
struct MetricsServerOptions {
  // Open connections in all (at most 65536); one more is closed as soon as it is accepted.
  int max_connections = 256;
  // Open connections from one client IP (at most max_connections), so one host cannot take them
  // all. Prometheus needs one.
  int max_connections_per_ip = 32;
  // A connection that sends and receives nothing for this long is closed (at most 3600). Also
  // bounds a keep-alive connection between scrapes.
  int idle_timeout_s = 10;
};

class MetricsServer {
 public:
  // Serves `registry` at http://<address>/metrics until destroyed: GET and HEAD /metrics -> 200
  // in the Prometheus text format; other paths 404; other methods 405; malformed HTTP 400;
  // request headers over 32 KiB 431. `address`: "HOST:PORT" ("127.0.0.1:9090", "0.0.0.0:9090",
  // "localhost:9090"), "[IPv6]:PORT" or just "PORT" (all IPv4 interfaces). Port 0 picks an
  // ephemeral port (see port()). Malformed address or options -> InvalidArgument; cannot
  // resolve or bind (e.g. port in use) -> Unavailable naming the address.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::shared_ptr<prometheus::Registry> registry,
      const MetricsServerOptions& options = {});
  // Stops serving promptly (open connections are closed, an exchange in progress is abandoned)
  // and closes the socket.
  ~MetricsServer();

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound port (the real one when started on port 0).
  int port() const { return port_; }

 private:
  MetricsServer() = default;

  std::shared_ptr<prometheus::Registry> registry_;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
};

}  // namespace caliber::metrics
