#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "services/metrics/coordinator_metrics.h"
#include "services/metrics/metrics_server.h"
#include "services/metrics/storage_metrics.h"
#include "services/metrics/worker_metrics.h"

namespace caliber::metrics {
namespace {

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GET http://127.0.0.1:<port><path>; returns the body, or "" with a test failure.
std::string HttpGet(int port, const std::string& path = "/metrics", long* status = nullptr) {
  CURL* curl = curl_easy_init();
  EXPECT_NE(curl, nullptr);
  std::string body;
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  const CURLcode code = curl_easy_perform(curl);
  EXPECT_EQ(code, CURLE_OK) << curl_easy_strerror(code);
  long http = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http);
  if (status != nullptr) *status = http;
  curl_easy_cleanup(curl);
  return body;
}

// Whole-line match, so "..._total 1" does not match "..._total 10".
void ExpectLine(const std::string& text, const std::string& line) {
  std::istringstream lines(text);
  std::string current;
  bool found = false;
  while (!found && std::getline(lines, current)) found = current == line;
  EXPECT_TRUE(found) << "missing line: " << line;
}

TEST(MetricsServer, ServesRegistryOnEphemeralPort) {
  auto registry = std::make_shared<prometheus::Registry>();
  CoordinatorMetrics coordinator(*registry);
  WorkerMetrics worker(*registry);
  StorageMetrics storage(*registry);

  auto server = MetricsServer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);

  coordinator.SetJobs("queued", 3);
  coordinator.SetJobs("RUNNING", 1);  // proto enum spelling
  coordinator.SetJobs("bogus", 7);
  coordinator.JobSubmitted(true);
  coordinator.JobSubmitted(true);
  coordinator.JobSubmitted(false);
  coordinator.JobFinished("succeeded", 42);
  coordinator.LayerDone();
  coordinator.SetWorkers(4, 1);
  coordinator.WorkerLost();
  coordinator.LayersReassigned(5);
  coordinator.LayersReassigned(-2);  // ignored
  coordinator.SetRunningLayers(10, 32);
  coordinator.CalibrationTokens(1024);

  worker.CalibrationTokens(32768);
  worker.HessianFlops(1e12);
  worker.ModuleQuantSeconds("gptq", "self_attn.q_proj", 0.3);
  worker.ModuleQuantSeconds("gptq", "q_proj", 0.02);
  worker.ModuleQuantSeconds("mystery", "lm_head", 1);
  worker.LayerDone();
  worker.SetStageProgress(2, 8);
  worker.ActivationBytes("sent", 4096);
  worker.ActivationBytes("received", 1024);
  worker.SetConnected(true);

  storage.OnRequest("s3", "get", 1000, false);
  storage.OnRequest("s3", "get", 0, true);
  storage.OnRequest("file", "put", 512, false);
  storage.OnRequest("gcs", "get", 10, false);

  long status = 0;
  const std::string text = HttpGet((*server)->port(), "/metrics", &status);
  EXPECT_EQ(status, 200);

  ExpectLine(text, "caliber_jobs{state=\"queued\"} 3");
  ExpectLine(text, "caliber_jobs{state=\"running\"} 1");
  ExpectLine(text, "caliber_jobs{state=\"failed\"} 0");
  ExpectLine(text, "caliber_jobs{state=\"other\"} 7");
  EXPECT_NE(text.find("# TYPE caliber_jobs gauge"), std::string::npos);
  ExpectLine(text, "caliber_job_submissions_total{outcome=\"accepted\"} 2");
  ExpectLine(text, "caliber_job_submissions_total{outcome=\"rejected\"} 1");
  ExpectLine(text, "caliber_job_duration_seconds_count{state=\"succeeded\"} 1");
  ExpectLine(text, "caliber_job_duration_seconds_sum{state=\"succeeded\"} 42");
  ExpectLine(text, "caliber_job_duration_seconds_bucket{state=\"succeeded\",le=\"60\"} 1");
  ExpectLine(text, "caliber_job_duration_seconds_bucket{state=\"succeeded\",le=\"30\"} 0");
  EXPECT_NE(text.find("# TYPE caliber_job_duration_seconds histogram"), std::string::npos);
  ExpectLine(text, "caliber_layers_quantized_total 1");
  ExpectLine(text, "caliber_workers{state=\"live\"} 4");
  ExpectLine(text, "caliber_workers{state=\"lost\"} 1");
  ExpectLine(text, "caliber_worker_losses_total 1");
  ExpectLine(text, "caliber_layer_reassignments_total 5");
  ExpectLine(text, "caliber_running_layers_done 10");
  ExpectLine(text, "caliber_running_layers 32");
  ExpectLine(text, "caliber_job_calibration_tokens_total 1024");

  ExpectLine(text, "caliber_calibration_tokens_total 32768");
  ExpectLine(text, "caliber_hessian_flops_total 1000000000000");
  ExpectLine(text, "caliber_module_quant_seconds_count{method=\"gptq\",module=\"q_proj\"} 2");
  ExpectLine(text, "caliber_module_quant_seconds_count{method=\"other\",module=\"other\"} 1");
  ExpectLine(text, "caliber_worker_layers_quantized_total 1");
  ExpectLine(text, "caliber_stage_layers_done 2");
  ExpectLine(text, "caliber_stage_layers 8");
  ExpectLine(text, "caliber_activation_bytes_total{direction=\"sent\"} 4096");
  ExpectLine(text, "caliber_activation_bytes_total{direction=\"received\"} 1024");
  ExpectLine(text, "caliber_worker_connected 1");

  ExpectLine(text,
             "caliber_object_store_requests_total{backend=\"s3\",op=\"get\",outcome=\"ok\"} 1");
  ExpectLine(text,
             "caliber_object_store_requests_total{backend=\"s3\",op=\"get\",outcome=\"error\"} 1");
  ExpectLine(text,
             "caliber_object_store_requests_total{backend=\"file\",op=\"list\",outcome=\"ok\"} 0");
  ExpectLine(text, "caliber_object_store_bytes_total{backend=\"s3\",op=\"get\"} 1000");
  ExpectLine(text, "caliber_object_store_bytes_total{backend=\"file\",op=\"put\"} 512");
  ExpectLine(text,
             "caliber_object_store_requests_total{backend=\"other\",op=\"get\",outcome=\"ok\"} 1");

  worker.SetConnected(false);
  const std::string again = HttpGet((*server)->port());
  ExpectLine(again, "caliber_worker_connected 0");
}

TEST(MetricsServer, TwoServersGetDistinctPortsAndBusyPortIsAnError) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto first = MetricsServer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = MetricsServer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE((*first)->port(), (*second)->port());

  const std::string busy = "127.0.0.1:" + std::to_string((*first)->port());
  auto clash = MetricsServer::Start(busy, registry);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(clash.status().message()).find(busy), std::string::npos) << clash.status();

  EXPECT_EQ(MetricsServer::Start("127.0.0.1:0", nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MetricsServer, OtherPathsMethodsAndAddressForms) {
  auto registry = std::make_shared<prometheus::Registry>();
  WorkerMetrics worker(*registry);
  // A bare port listens on every IPv4 interface.
  auto server = MetricsServer::Start("0", registry);
  ASSERT_TRUE(server.ok()) << server.status();
  long status = 0;
  HttpGet((*server)->port(), "/", &status);
  EXPECT_EQ(status, 404);
  HttpGet((*server)->port(), "/metrics?x=1", &status);
  EXPECT_EQ(status, 200);

  for (const char* bad : {"", "127.0.0.1:", ":9090", "127.0.0.1:http", "127.0.0.1:70000",
                          "::1:9090", "[::1]9090", "[::1"}) {
    auto r = MetricsServer::Start(bad, registry);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad << ": " << r.status();
  }
}

TEST(MetricsServer, SilentClientDoesNotBlockShutdown) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto server = MetricsServer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(server.ok()) << server.status();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>((*server)->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the server is now reading
  const auto start = std::chrono::steady_clock::now();
  server->reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  close(fd);
}

TEST(CoordinatorMetrics, SharesSeriesWhenConstructedTwiceOnOneRegistry) {
  prometheus::Registry registry;
  CoordinatorMetrics a(registry);
  CoordinatorMetrics b(registry);
  a.LayerDone();
  b.LayerDone();
  bool found = false;
  for (const auto& family : registry.Collect()) {
    if (family.name != "caliber_layers_quantized_total") continue;
    ASSERT_EQ(family.metric.size(), 1u);
    EXPECT_EQ(family.metric[0].counter.value, 2);
    found = true;
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace caliber::metrics
