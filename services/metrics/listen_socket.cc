#include "services/metrics/listen_socket.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace caliber::metrics {
namespace {

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

}  // namespace

absl::StatusOr<ListenSocket> Listen(const std::string& address, int backlog) {
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

  ListenSocket out;
  std::string last_error = "no usable address";
  for (addrinfo* ai = resolved; ai != nullptr && out.fd < 0; ai = ai->ai_next) {
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
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
      last_error = ErrnoMessage(errno);
      close(fd);
      continue;
    }
    out.fd = fd;
  }
  freeaddrinfo(resolved);
  if (out.fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics server: cannot listen on ", address, ": ", last_error));
  }

  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  if (getsockname(out.fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
    const int error = errno;
    close(out.fd);
    return absl::InternalError(
        absl::StrCat("metrics server on ", address, ": getsockname: ", ErrnoMessage(error)));
  }
  out.port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
  return out;
}

}  // namespace caliber::metrics
