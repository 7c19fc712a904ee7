#include "services/metrics/metrics_server.h"

#include <microhttpd.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <string_view>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "services/metrics/listen_socket.h"

namespace caliber::metrics {
namespace {

// The kernel queues this many connections before libmicrohttpd accepts them. It accepts as fast
// as they come, so this only absorbs bursts; but a full queue drops SYNs, and a dropped scrape
// SYN is retried only after 1 s, so be generous (the kernel caps it at net.core.somaxconn).
constexpr int kBacklog = SOMAXCONN;
// Per-connection memory pool: request line and headers plus the response headers. A request
// whose headers do not fit is answered 431 and closed. Prometheus sends well under 1 KiB.
constexpr size_t kConnectionMemoryBytes = 32 * 1024;
// The stack of libmicrohttpd's polling thread, which also serializes the registry. Set
// explicitly and generously: glibc takes static TLS (60 KB of it OpenBLAS's) out of every
// thread's stack, and printf through libquadmath's hooks is stack-hungry; civetweb's fixed
// 100 KB stacks overflowed on exactly this (see metrics_server.h). One thread, so 8 MiB costs
// only address space.
constexpr size_t kThreadStackBytes = 8 * 1024 * 1024;

constexpr char kTextFormat[] = "text/plain; version=0.0.4; charset=utf-8";

MHD_Result Reply(MHD_Connection* connection, unsigned int status, const std::string& body,
                 const char* content_type, const char* allow = nullptr) {
  MHD_Response* response = MHD_create_response_from_buffer(
      body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;  // out of memory: MHD closes the connection
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  if (allow != nullptr) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow);
  const MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

// libmicrohttpd's request callback: called once the request line and headers are in (and again
// per chunk of a body, which /metrics never needs: the reply is queued on the first call and
// any body is discarded with the connection). `url` has no query string. For HEAD,
// libmicrohttpd sends the headers (with the body's Content-Length) and no body.
MHD_Result HandleRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                         const char* /*version*/, const char* /*upload_data*/,
                         size_t* /*upload_data_size*/, void** /*request_state*/) {
  auto* registry = static_cast<prometheus::Registry*>(cls);
  const std::string_view m(method);
  if (m != MHD_HTTP_METHOD_GET && m != MHD_HTTP_METHOD_HEAD) {
    return Reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n", "text/plain",
                 "GET, HEAD");
  }
  if (std::string_view(url) != "/metrics") {
    return Reply(connection, MHD_HTTP_NOT_FOUND, "metrics are at /metrics\n", "text/plain");
  }
  std::string body;
  try {
    body = prometheus::TextSerializer().Serialize(registry->Collect());
  } catch (const std::exception& e) {
    // prometheus-cpp may throw (e.g. std::bad_alloc); nothing escapes into libmicrohttpd (C).
    return Reply(connection, MHD_HTTP_INTERNAL_SERVER_ERROR,
                 absl::StrCat("cannot serialize metrics: ", e.what(), "\n"), "text/plain");
  }
  return Reply(connection, MHD_HTTP_OK, body, kTextFormat);
}

absl::Status CheckOptions(const MetricsServerOptions& o) {
  const auto in = [](int value, int max) { return value >= 1 && value <= max; };
  if (!in(o.max_connections, 65536)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics server: max connections ", o.max_connections, " not in [1, 65536]"));
  }
  if (!in(o.max_connections_per_ip, o.max_connections)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics server: max connections per IP ", o.max_connections_per_ip,
                     " not in [1, max connections = ", o.max_connections, "]"));
  }
  if (!in(o.idle_timeout_s, 3600)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics server: idle timeout ", o.idle_timeout_s, " s not in [1, 3600]"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::shared_ptr<prometheus::Registry> registry,
    const MetricsServerOptions& options) {
  if (registry == nullptr) return absl::InvalidArgumentError("metrics server: null registry");
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  absl::StatusOr<ListenSocket> socket = Listen(address, kBacklog);
  if (!socket.ok()) return socket.status();

  auto server = std::unique_ptr<MetricsServer>(new MetricsServer());
  server->registry_ = std::move(registry);
  server->port_ = socket->port;
  // No MHD_USE_ERROR_LOG: refused connections (over a limit) would log a line each, and a
  // client could flood the daemon's log with them.
  // One option and its value per line.
  // clang-format off
  server->daemon_ = MHD_start_daemon(
      MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC, 0, nullptr, nullptr,
      &HandleRequest, server->registry_.get(),
      MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(socket->fd),
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned int>(options.max_connections),
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<unsigned int>(options.max_connections_per_ip),
      MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned int>(options.idle_timeout_s),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemoryBytes,
      MHD_OPTION_THREAD_STACK_SIZE, kThreadStackBytes,
      MHD_OPTION_END);
  // clang-format on
  if (server->daemon_ == nullptr) {
    const int error = errno;
    close(socket->fd);
    return absl::InternalError(
        absl::StrCat("metrics server on ", address,
                     ": libmicrohttpd did not start: ", std::system_category().message(error)));
  }
  return server;
}

MetricsServer::~MetricsServer() {
  // Wakes the polling thread, closes every connection and the listening socket, joins.
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
}

}  // namespace caliber::metrics
