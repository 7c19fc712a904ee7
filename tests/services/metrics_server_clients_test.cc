// /metrics under hostile or broken clients, over real sockets on loopback: 200 idle and
// half-sent (slowloris) connections do not delay a scrape and are closed once idle; the server
// stops promptly with them open; one client IP cannot take every connection; malformed HTTP is
// answered 400.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "services/metrics/metrics_server.h"
#include "services/metrics/worker_metrics.h"

namespace caliber::metrics {
namespace {

using Clock = std::chrono::steady_clock;

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

struct Scrape {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  Clock::duration took{};
};

// GET http://127.0.0.1:<port>/metrics, giving up after 10 s (the old one-connection-at-a-time
// server needed 60 s and more behind 200 idle connections).
Scrape ScrapeMetrics(int port) {
  Scrape out;
  CURL* curl = curl_easy_init();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  const auto start = Clock::now();
  out.code = curl_easy_perform(curl);
  out.took = Clock::now() - start;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  curl_easy_cleanup(curl);
  return out;
}

// A non-blocking TCP connection from `source` (any 127.0.0.0/8 address is loopback on Linux, so
// tests can play several client hosts) to 127.0.0.1:port. The connect is not waited for.
int ConnectFrom(const char* source, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  inet_pton(AF_INET, source, &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0 ||
      (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0 && errno != EINPROGRESS)) {
    close(fd);
    return -1;
  }
  return fd;
}

// True once the peer has closed `fd` (EOF or reset) before `deadline`; data is read and dropped.
bool ClosedByPeer(int fd, Clock::time_point deadline) {
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buffer[4096];
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      return true;
    }
  }
}

// Sends `request` on a fresh connection and returns everything the server sends back before it
// closes (or 10 s pass).
std::string Exchange(int port, const std::string& request) {
  const int fd = ConnectFrom("127.0.0.1", port);
  EXPECT_GE(fd, 0);
  pollfd p{fd, POLLOUT, 0};
  poll(&p, 1, 10000);
  EXPECT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string reply;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    pollfd r{fd, POLLIN, 0};
    if (poll(&r, 1, 1000) <= 0) continue;
    char buffer[4096];
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    reply.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return reply;
}

int ThreadCount() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

int OpenFdCount() {
  int n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++n;
  }
  return n;
}

// 200 connections from 10 client addresses (20 each, under the per-IP limit), every tenth one
// having sent half a request line and stalled (slowloris); the rest silent.
std::vector<int> OpenIdleConnections(int port) {
  std::vector<int> fds;
  for (int i = 0; i < 200; ++i) {
    const std::string source = "127.0.0." + std::to_string(2 + i % 10);
    const int fd = ConnectFrom(source.c_str(), port);
    EXPECT_GE(fd, 0) << "connection " << i << ": " << std::strerror(errno);
    if (fd >= 0) fds.push_back(fd);
  }
  for (size_t i = 0; i < fds.size(); i += 10) {
    pollfd p{fds[i], POLLOUT, 0};
    if (poll(&p, 1, 2000) == 1) send(fds[i], "GET /metr", 9, MSG_NOSIGNAL);
  }
  return fds;
}

TEST(MetricsServerClients, ScrapeIsPromptUnder200IdleAndSlowlorisConnections) {
  auto registry = std::make_shared<prometheus::Registry>();
  WorkerMetrics worker(*registry);
  worker.LayerDone();
  auto server = MetricsServer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  const int threads_before = ThreadCount();

  std::vector<int> idle = OpenIdleConnections(port);
  ASSERT_EQ(idle.size(), 200u);
  const Scrape first = ScrapeMetrics(port);
  ASSERT_EQ(first.code, CURLE_OK) << curl_easy_strerror(first.code) << " after "
                                  << std::chrono::duration<double>(first.took).count() << " s";
  EXPECT_EQ(first.status, 200);
  EXPECT_NE(first.body.find("caliber_worker_layers_quantized_total 1"), std::string::npos);
  // Idle connections cost no thread (one polling thread serves them all).
  EXPECT_LE(ThreadCount(), threads_before + 1);

  // The server closes them once idle for --metrics-idle-timeout-s (default 10 s); the deadline
  // is generous for a loaded machine.
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  for (size_t i = 0; i < idle.size(); ++i) {
    EXPECT_TRUE(ClosedByPeer(idle[i], deadline)) << "connection " << i << " still open";
    close(idle[i]);
  }
  const Scrape second = ScrapeMetrics(port);
  EXPECT_EQ(second.code, CURLE_OK) << curl_easy_strerror(second.code);
  EXPECT_EQ(second.status, 200);
}

TEST(MetricsServerClients, StopsPromptlyWith200ConnectionsOpen) {
  auto registry = std::make_shared<prometheus::Registry>();
  const int fds_before = OpenFdCount();
  auto server = MetricsServer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(server.ok()) << server.status();
  std::vector<int> idle = OpenIdleConnections((*server)->port());
  ASSERT_EQ(ScrapeMetrics((*server)->port()).status, 200);  // every connection is accepted
  const auto start = Clock::now();
  server->reset();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  for (int fd : idle) {
    EXPECT_TRUE(ClosedByPeer(fd, Clock::now() + std::chrono::seconds(10)));
    close(fd);
  }
  EXPECT_EQ(OpenFdCount(), fds_before);  // the listening socket and every connection closed
}

TEST(MetricsServerClients, MalformedAndUnsupportedRequests) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto server = MetricsServer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();

  // libmicrohttpd answers 400 to a malformed request line or header, and closes a connection
  // whose first line is not even a request line.
  EXPECT_EQ(Exchange(port, "GET /metrics FOO/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n")
                .rfind("HTTP/1.1 400", 0),
            0u);
  EXPECT_EQ(Exchange(port, "GARBAGE\r\n\r\n").find("200 OK"), std::string::npos);
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 505", 0),
            0u);

  const std::string post =
      Exchange(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(post.rfind("HTTP/1.1 405", 0), 0u) << post;
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos) << post;

  const std::string head = Exchange(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u) << head;
  EXPECT_NE(head.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos)
      << head;
  EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "");  // no body

  // Request headers past the 32 KiB per-connection pool: 431, not a crash or a hang.
  const std::string big =
      Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') +
                         "\r\n\r\n");
  EXPECT_EQ(big.rfind("HTTP/1.1 431", 0), 0u) << big.substr(0, 200);
  EXPECT_EQ(ScrapeMetrics(port).status, 200);  // and the server still serves
}

// --- Options (MetricsServerOptions, the --metrics-* flags) ---

TEST(MetricsServerClients, OneClientIpCannotTakeEveryConnection) {
  auto registry = std::make_shared<prometheus::Registry>();
  MetricsServerOptions options;
  options.max_connections = 16;
  options.max_connections_per_ip = 4;
  options.idle_timeout_s = 3600;  // the held ones stay open for the whole test
  auto server = MetricsServer::Start("127.0.0.1:0", registry, options);
  ASSERT_TRUE(server.ok()) << server.status();
  std::vector<int> open;
  for (int i = 0; i < 40; ++i) {
    open.push_back(ConnectFrom("127.0.0.2", (*server)->port()));
    ASSERT_GE(open.back(), 0);
  }
  // Beyond 4 the server closes them as soon as it accepts them.
  std::vector<int> closed;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (closed.size() < 36 && Clock::now() < deadline) {
    for (size_t i = 0; i < open.size(); ++i) {
      if (ClosedByPeer(open[i], Clock::now() + std::chrono::milliseconds(10))) {
        closed.push_back(open[i]);
        open.erase(open.begin() + static_cast<std::ptrdiff_t>(i--));
      }
    }
  }
  EXPECT_EQ(closed.size(), 36u);
  EXPECT_EQ(open.size(), 4u);
  for (int fd : open) EXPECT_FALSE(ClosedByPeer(fd, Clock::now()));  // still held
  const Scrape scrape = ScrapeMetrics((*server)->port());            // from 127.0.0.1
  EXPECT_EQ(scrape.code, CURLE_OK) << curl_easy_strerror(scrape.code);
  EXPECT_EQ(scrape.status, 200);
  for (int fd : open) close(fd);
  for (int fd : closed) close(fd);
}

TEST(MetricsServerClients, ShortIdleTimeoutClosesSooner) {
  auto registry = std::make_shared<prometheus::Registry>();
  MetricsServerOptions options;
  options.idle_timeout_s = 1;
  auto server = MetricsServer::Start("127.0.0.1:0", registry, options);
  ASSERT_TRUE(server.ok()) << server.status();
  const int fd = ConnectFrom("127.0.0.1", (*server)->port());
  ASSERT_GE(fd, 0);
  // Closed well before the 10 s default (the margin is for a loaded machine).
  EXPECT_TRUE(ClosedByPeer(fd, Clock::now() + std::chrono::seconds(8)));
  close(fd);
}

TEST(MetricsServerClients, OptionsOutOfRangeAreInvalidArgument) {
  auto registry = std::make_shared<prometheus::Registry>();
  const auto start = [&](int max, int per_ip, int idle) {
    MetricsServerOptions o;
    o.max_connections = max;
    o.max_connections_per_ip = per_ip;
    o.idle_timeout_s = idle;
    return MetricsServer::Start("127.0.0.1:0", registry, o).status();
  };
  EXPECT_EQ(start(0, 1, 10).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start(65537, 1, 10).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start(8, 9, 10).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start(8, 0, 10).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start(8, 8, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(start(8, 8, 3601).code(), absl::StatusCode::kInvalidArgument);
  const absl::Status s = start(8, 9, 10);
  EXPECT_NE(std::string(s.message()).find("per IP 9 not in [1, max connections = 8]"),
            std::string::npos)
      << s;
  EXPECT_TRUE(start(65536, 65536, 3600).ok());
}

TEST(MetricsServerClients, ListensOnIpv6Loopback) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto server = MetricsServer::Start("[::1]:0", registry);
  if (!server.ok() && server.status().code() == absl::StatusCode::kUnavailable) {
    GTEST_SKIP() << "no IPv6 loopback: " << server.status();
  }
  ASSERT_TRUE(server.ok()) << server.status();
  CURL* curl = curl_easy_init();
  std::string body;
  const std::string url = "http://[::1]:" + std::to_string((*server)->port()) + "/metrics";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  EXPECT_EQ(curl_easy_perform(curl), CURLE_OK);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  EXPECT_EQ(status, 200);
  curl_easy_cleanup(curl);
}

}  // namespace
}  // namespace caliber::metrics
