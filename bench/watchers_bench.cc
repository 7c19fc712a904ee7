// What concurrent WatchQuantJob streams cost a real caliber-coordinator process: for each
// watcher count, a fresh coordinator (no workers, so the job stays queued), one submitted job,
// N streams on it from this process (callback client API over a few channels), then the
// coordinator's Threads and VmRSS from /proc/PID/status before and with the streams open.
// The job is then cancelled and every stream must end OK after a CANCELLED event.
//
// Fails (exit 1) when the coordinator's thread count with streams open exceeds --max-threads,
// grows with the watcher count, or a stream misses the terminal event; registered as the
// service.Watchers test (1,000 vs 10,000). Results: bench/results/watchers.md.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/coordinator/watch_swarm.h"
#include "tests/services/child_process.h"

ABSL_FLAG(std::string, coordinator, "build/coordinator/caliber-coordinator", "the daemon to measure");
ABSL_FLAG(std::string, testdata, "testdata", "Caliber's testdata directory (the tiny model)");
ABSL_FLAG(std::string, watchers, "0,1000,10000", "watcher counts, one fresh coordinator each");
ABSL_FLAG(int, channels, 8, "client channels (one HTTP/2 connection each) the streams share");
ABSL_FLAG(int64_t, max_threads, 0,
          "fail when the coordinator has more threads with streams open; 0: max(100, 4 x cores), as "
          "gRPC's pools scale with the cores");
ABSL_FLAG(int64_t, max_thread_growth, 8,
          "fail when the largest watcher count has more threads than the smallest nonzero one plus this");

namespace caliber {
namespace {
namespace fs = std::filesystem;

struct Row {
  int64_t watchers = 0;
  int64_t threads_before = 0, threads_with = 0;
  int64_t rss_before_kb = 0, rss_with_kb = 0;
  bool ok = false;
};

bool Measure(int64_t n, Row& row) {
  row.watchers = n;
  const fs::path dir = fs::temp_directory_path() / ("watchers_bench_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string testdata = fs::absolute(absl::GetFlag(FLAGS_testdata)).string();
  const std::string port_file = (dir / "port").string();
  auto coordinator = testing::ChildProcess::Start(
      {absl::GetFlag(FLAGS_coordinator), "--listen", "127.0.0.1:0", "--state-dir", (dir / "state").string(),
       "--file-roots", testdata + "," + dir.string(), "--port-file", port_file},
      (dir / "coordinator.log").string());
  if (coordinator == nullptr) return false;
  int port = 0;
  for (absl::Time deadline = absl::Now() + absl::Seconds(30); port == 0 && absl::Now() < deadline;) {
    std::ifstream in(port_file);
    if (!(in >> port)) absl::SleepFor(absl::Milliseconds(20));
  }
  if (port == 0) return false;
  const std::string address = "127.0.0.1:" + std::to_string(port);
  const std::string pid = std::to_string(coordinator->pid());

  auto stub = v1::QuantService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  v1::SubmitQuantJobRequest submit;
  v1::QuantJobSpec& s = *submit.mutable_spec();
  s.set_model_uri("file://" + testdata + "/tinyllama-en");
  s.set_output_uri("file://" + (dir / "out").string());
  s.mutable_calibration()->set_uri("file://" + testdata + "/tinyllama-en/calib/calib_tokens.i32");
  s.mutable_method()->set_name("gptq");
  v1::QuantJob job;
  {
    grpc::ClientContext ctx;
    if (grpc::Status st = stub->SubmitQuantJob(&ctx, submit, &job); !st.ok()) {
      std::fprintf(stderr, "submit: %s\n", st.error_message().c_str());
      return false;
    }
  }
  row.threads_before = testing::ProcStatus(pid, "Threads");
  row.rss_before_kb = testing::ProcStatus(pid, "VmRSS");

  bool ok = true;
  {
    testing::WatchSwarm swarm(address, absl::GetFlag(FLAGS_channels));
    swarm.Open(n, job.job_id(), "");
    ok = swarm.WaitFirst(absl::Minutes(5)) && swarm.tally().first == n;
    row.threads_with = testing::ProcStatus(pid, "Threads");
    row.rss_with_kb = testing::ProcStatus(pid, "VmRSS");
    grpc::ClientContext ctx;
    v1::CancelQuantJobRequest cancel;
    cancel.set_job_id(job.job_id());
    ok = ok && stub->CancelQuantJob(&ctx, cancel, &job).ok();
    ok = ok && swarm.WaitDone(absl::Minutes(5));
    const testing::WatchSwarm::Tally t = swarm.tally();
    const int64_t ended_ok = t.codes.count(grpc::StatusCode::OK) ? t.codes.at(grpc::StatusCode::OK) : 0;
    const int64_t saw_end = t.last_state.count(v1::CANCELLED) ? t.last_state.at(v1::CANCELLED) : 0;
    if (ended_ok != n || saw_end != n) {
      std::fprintf(stderr, "%lld watchers: %lld ended OK, %lld saw CANCELLED\n", static_cast<long long>(n),
                   static_cast<long long>(ended_ok), static_cast<long long>(saw_end));
      ok = false;
    }
  }
  coordinator->Stop();
  fs::remove_all(dir);
  row.ok = ok;
  return ok;
}

int Run() {
  std::vector<Row> rows;
  bool ok = true;
  for (absl::string_view w : absl::StrSplit(absl::GetFlag(FLAGS_watchers), ',', absl::SkipEmpty())) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(w, &n) || n < 0) {
      std::fprintf(stderr, "bad --watchers entry '%s'\n", std::string(w).c_str());
      return 2;
    }
    Row row;
    ok = Measure(n, row) && ok;
    rows.push_back(row);
  }
  int64_t max_threads = absl::GetFlag(FLAGS_max_threads);
  if (max_threads <= 0) max_threads = std::max<int64_t>(100, 4 * static_cast<int64_t>(std::thread::hardware_concurrency()));
  std::printf("| watchers | threads before | threads with | VmRSS before (MB) | VmRSS with (MB) | KB per watcher | all ended OK after CANCELLED |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|:---:|\n");
  for (const Row& r : rows) {
    const double per = r.watchers > 0 ? static_cast<double>(r.rss_with_kb - r.rss_before_kb) / r.watchers : 0;
    char per_text[32] = "—";
    if (r.watchers > 0) std::snprintf(per_text, sizeof(per_text), "%.1f", per);
    std::printf("| %lld | %lld | %lld | %.1f | %.1f | %s | %s |\n", static_cast<long long>(r.watchers),
                static_cast<long long>(r.threads_before), static_cast<long long>(r.threads_with),
                r.rss_before_kb / 1024.0, r.rss_with_kb / 1024.0, per_text, r.ok ? "yes" : "NO");
    if (r.threads_with > max_threads) {
      std::fprintf(stderr, "%lld watchers: %lld coordinator threads > %lld\n", static_cast<long long>(r.watchers),
                   static_cast<long long>(r.threads_with), static_cast<long long>(max_threads));
      ok = false;
    }
  }
  // Independent of the watcher count: the smallest and largest nonzero counts need about as many.
  const Row* least = nullptr;
  const Row* most = nullptr;
  for (const Row& r : rows) {
    if (r.watchers == 0) continue;
    if (least == nullptr || r.watchers < least->watchers) least = &r;
    if (most == nullptr || r.watchers > most->watchers) most = &r;
  }
  if (least != nullptr && most->threads_with > least->threads_with + absl::GetFlag(FLAGS_max_thread_growth)) {
    std::fprintf(stderr, "threads grow with watchers: %lld at %lld, %lld at %lld\n",
                 static_cast<long long>(least->threads_with), static_cast<long long>(least->watchers),
                 static_cast<long long>(most->threads_with), static_cast<long long>(most->watchers));
    ok = false;
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace caliber

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return caliber::Run();
}
