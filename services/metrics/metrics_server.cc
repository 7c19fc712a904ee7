#include "services/metrics/metrics_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <string_view>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace caliber::metrics {
namespace {

using Clock = std::chrono::steady_clock;

// A scrape is one small request; a client that takes longer than this to send its request or
// read the response is dropped, so one slow client cannot hold the (single) serving thread.
constexpr auto kExchangeTimeout = std::chrono::seconds(5);
constexpr size_t kMaxRequestBytes = 8192;

std::string ErrnoMessage(int error) { return std::system_category().message(error); }

struct HostPort {
  std::string host;  // "" = all IPv4 interfaces
  std::string port;
};

absl::StatusOr<HostPort> SplitAddress(const std::string& address) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics address \"", address, "\": ", absl::string_view(why.data(), why.size()),
        " (expected HOST:PORT, [IPV6]:PORT or PORT)"));
  };
  HostPort out;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return bad("malformed [IPv6]:PORT");
    }
    out.host = address.substr(1, close - 1);
    out.port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) {
      out.port = address;
    } else {
      out.host = address.substr(0, colon);
      out.port = address.substr(colon + 1);
      if (out.host.find(':') != std::string::npos) return bad("IPv6 hosts need brackets");
      if (out.host.empty()) return bad("empty host");
    }
  }
  if (out.port.empty() || out.port.size() > 5) return bad("bad port");
  for (char c : out.port) {
    if (c < '0' || c > '9') return bad("bad port");
  }
  if (std::stoi(out.port) > 65535) return bad("port above 65535");
  return out;
}

// Waits until `fd` is ready for `events` or `wake_fd` is readable / the deadline passes.
// True when `fd` is ready.
bool WaitReady(int fd, short events, int wake_fd, Clock::time_point deadline) {
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
    const int n = poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if (fds[1].revents != 0) return false;  // stopping
    return (fds[0].revents & (events | POLLERR | POLLHUP)) != 0;
  }
}

bool SendAll(int fd, std::string_view data, int wake_fd, Clock::time_point deadline) {
  while (!data.empty()) {
    // MSG_NOSIGNAL: a client that hung up must not raise SIGPIPE in the daemon.
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!WaitReady(fd, POLLOUT, wake_fd, deadline)) return false;
      continue;
    }
    return false;
  }
  return true;
}

std::string Response(std::string_view status, std::string_view content_type,
                     const std::string& body, bool head) {
  std::string out = absl::StrCat(
      "HTTP/1.1 ", absl::string_view(status.data(), status.size()),
      "\r\nContent-Type: ", absl::string_view(content_type.data(), content_type.size()),
      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n");
  if (!head) out += body;
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::shared_ptr<prometheus::Registry> registry) {
  if (registry == nullptr) return absl::InvalidArgumentError("metrics server: null registry");
  absl::StatusOr<HostPort> split = SplitAddress(address);
  if (!split.ok()) return split.status();

  addrinfo hints{};
  hints.ai_family = split->host.empty() ? AF_INET : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* resolved = nullptr;
  const int gai = getaddrinfo(split->host.empty() ? nullptr : split->host.c_str(),
                              split->port.c_str(), &hints, &resolved);
  if (gai != 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics server: cannot resolve ", address, ": ", gai_strerror(gai)));
  }

  auto server = std::unique_ptr<MetricsServer>(new MetricsServer());
  server->registry_ = std::move(registry);
  std::string last_error = "no usable address";
  for (addrinfo* ai = resolved; ai != nullptr && server->listen_fd_ < 0; ai = ai->ai_next) {
    const int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last_error = ErrnoMessage(errno);
      continue;
    }
    // Lets a restarted daemon rebind while old connections sit in TIME_WAIT; on Linux it does
    // not allow two live listeners on one port.
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 16) != 0) {
      last_error = ErrnoMessage(errno);
      close(fd);
      continue;
    }
    server->listen_fd_ = fd;
  }
  freeaddrinfo(resolved);
  if (server->listen_fd_ < 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics server: cannot listen on ", address, ": ", last_error));
  }

  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  if (getsockname(server->listen_fd_, reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
    return absl::InternalError(
        absl::StrCat("metrics server on ", address, ": getsockname: ", ErrnoMessage(errno)));
  }
  server->port_ =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);

  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("metrics server: pipe: ", ErrnoMessage(errno)));
  }
  server->wake_read_fd_ = wake[0];
  server->wake_write_fd_ = wake[1];
  server->thread_ = std::thread([raw = server.get()] { raw->Serve(); });
  return server;
}

MetricsServer::~MetricsServer() {
  if (thread_.joinable()) {
    const char byte = 1;
    while (write(wake_write_fd_, &byte, 1) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  for (int fd : {listen_fd_, wake_read_fd_, wake_write_fd_}) {
    if (fd >= 0) close(fd);
  }
}

void MetricsServer::Serve() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_fd_, POLLIN, 0}};
    const int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;  // EAGAIN (another wakeup took it), ECONNABORTED, EMFILE...
    HandleConnection(fd);
    shutdown(fd, SHUT_RDWR);
    close(fd);
  }
}

void MetricsServer::HandleConnection(int fd) {
  const Clock::time_point deadline = Clock::now() + kExchangeTimeout;
  std::string request;
  while (request.find("\r\n\r\n") == std::string::npos) {
    if (request.size() >= kMaxRequestBytes) {
      SendAll(fd, Response("431 Request Header Fields Too Large", "text/plain", "", false),
              wake_read_fd_, deadline);
      return;
    }
    char buffer[2048];
    const ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
    if (got > 0) {
      request.append(buffer, static_cast<size_t>(got));
      continue;
    }
    if (got == 0) return;  // closed before a full request
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return;
    if (!WaitReady(fd, POLLIN, wake_read_fd_, deadline)) return;
  }

  // Request line: METHOD SP TARGET SP VERSION. Only the path of the target matters.
  const std::string_view line = std::string_view(request).substr(0, request.find("\r\n"));
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    SendAll(fd, Response("400 Bad Request", "text/plain", "bad request line\n", false),
            wake_read_fd_, deadline);
    return;
  }
  const std::string_view method = line.substr(0, sp1);
  std::string_view path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  const bool head = method == "HEAD";
  std::string response;
  if (method != "GET" && !head) {
    response = Response("405 Method Not Allowed", "text/plain", "only GET and HEAD\n", false);
  } else if (path != "/metrics") {
    response = Response("404 Not Found", "text/plain", "metrics are at /metrics\n", head);
  } else {
    std::string body;
    try {
      body = prometheus::TextSerializer().Serialize(registry_->Collect());
    } catch (const std::exception& e) {
      // prometheus-cpp may throw (e.g. std::bad_alloc); nothing escapes the serving thread.
      SendAll(fd,
              Response("500 Internal Server Error", "text/plain",
                       absl::StrCat("cannot serialize metrics: ", e.what(), "\n"), head),
              wake_read_fd_, deadline);
      return;
    }
    response = Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body, head);
  }
  SendAll(fd, response, wake_read_fd_, deadline);
}

}  // namespace caliber::metrics
