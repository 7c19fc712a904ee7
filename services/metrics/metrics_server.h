// The /metrics HTTP endpoint Prometheus scrapes. Each daemon owns one prometheus::Registry, hands
// it to its *Metrics classes and serves it here.
//
// Why not prometheus::Exposer: it runs civetweb, whose threads get a fixed 100 KB stack. glibc
// carves static TLS out of that stack, and OpenBLAS (linked by every daemon through caliber_core)
// alone has 60 KB of it; OpenBLAS also loads libquadmath, whose printf hooks send every printf
// down glibc's stack-hungry positional path. Together a scrape overflowed the stack inside
// civetweb's mg_printf and crashed the daemon. This server is one std::thread (default stack)
// serving the registry with prometheus-cpp's TextSerializer over plain HTTP/1.1.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace caliber::metrics {

class MetricsServer {
 public:
  // Serves `registry` at http://<address>/metrics until destroyed. `address`: "HOST:PORT"
  // ("127.0.0.1:9090", "0.0.0.0:9090", "localhost:9090"), "[IPv6]:PORT" or just "PORT" (all IPv4
  // interfaces). Port 0 picks an ephemeral port (see port()). Malformed address ->
  // InvalidArgument; cannot resolve or bind (e.g. port in use) -> Unavailable naming the address.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::shared_ptr<prometheus::Registry> registry);
  // Stops serving (promptly: an exchange in progress is abandoned) and closes the socket.
  ~MetricsServer();

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound port (the real one when started on port 0).
  int port() const { return port_; }

 private:
  MetricsServer() = default;
  void Serve();
  void HandleConnection(int fd);

  std::shared_ptr<prometheus::Registry> registry_;
  int listen_fd_ = -1;
  int wake_read_fd_ = -1;  // a byte written to wake_write_fd_ stops Serve()
  int wake_write_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace caliber::metrics
