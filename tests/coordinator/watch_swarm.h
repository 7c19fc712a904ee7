// Many concurrent WatchQuantJob streams from one process, on gRPC's callback client API (no
// thread per stream), spread over a few channels that each hold their own HTTP/2 connection.
// Counts the streams that saw their first event and how each ended. Shared by
// tests/coordinator/job_watchers_test.cc and bench/watchers_bench.cc.
#pragma once

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "caliber/v1/quant_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace caliber::testing {

// "Threads" and "VmRSS" (kB) of /proc/<pid>/status ("self" for this process); -1 if absent.
inline int64_t ProcStatus(const std::string& pid, const std::string& key) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  }
  return -1;
}

class WatchSwarm {
 public:
  struct Tally {
    int64_t opened = 0;
    int64_t first = 0;     // streams that received at least one event
    int64_t done = 0;      // streams that ended
    std::map<grpc::StatusCode, int64_t> codes;       // how they ended
    std::map<v1::JobState, int64_t> last_state;      // state in the last event of OK streams
  };

  WatchSwarm(const std::string& address, int channels) {
    for (int i = 0; i < channels; ++i) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one connection per channel
      args.SetInt("caliber.swarm_channel", i);
      stubs_.push_back(v1::QuantService::NewStub(
          grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
    }
  }
  // Cancels what is still open and waits for every stream to end (reactors must outlive OnDone).
  ~WatchSwarm() {
    CancelAll();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(+[](Tally* t) { return t->done == t->opened; }, &tally_));
  }

  // Opens n more streams on `job_id` (round-robin over the channels).
  void Open(int64_t n, const std::string& job_id, const std::string& token) {
    for (int64_t i = 0; i < n; ++i) {
      auto* r = new Reader(*this);
      {
        absl::MutexLock lock(&mu_);
        readers_.emplace_back(r);
        ++tally_.opened;
      }
      r->Start(*stubs_[static_cast<size_t>(next_++) % stubs_.size()], job_id, token);
    }
  }

  // Waits until every opened stream has had its first event or ended; false at the timeout.
  bool WaitFirst(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(+[](Tally* t) {
      return t->first + t->done >= t->opened; }, &tally_), timeout);
  }
  // Waits until every opened stream has ended; false at the timeout.
  bool WaitDone(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(+[](Tally* t) { return t->done == t->opened; }, &tally_),
                                timeout);
  }
  void CancelAll() {
    absl::MutexLock lock(&mu_);
    for (auto& r : readers_) r->ctx.TryCancel();
  }
  Tally tally() {
    absl::MutexLock lock(&mu_);
    return tally_;
  }

 private:
  struct Reader final : grpc::ClientReadReactor<v1::QuantJobEvent> {
    explicit Reader(WatchSwarm& s) : swarm(s) {}
    void Start(v1::QuantService::Stub& stub, const std::string& job_id, const std::string& token) {
      if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
      request.set_job_id(job_id);
      stub.async()->WatchQuantJob(&ctx, &request, this);
      StartRead(&event);
      StartCall();
    }
    void OnReadDone(bool ok) override {
      if (!ok) return;  // OnDone follows
      last = event.job().state();
      if (!seen) {
        seen = true;
        absl::MutexLock lock(&swarm.mu_);
        ++swarm.tally_.first;
      }
      StartRead(&event);
    }
    void OnDone(const grpc::Status& status) override {
      absl::MutexLock lock(&swarm.mu_);
      ++swarm.tally_.done;
      ++swarm.tally_.codes[status.error_code()];
      if (status.ok()) ++swarm.tally_.last_state[last];
    }
    WatchSwarm& swarm;
    grpc::ClientContext ctx;
    v1::WatchQuantJobRequest request;
    v1::QuantJobEvent event;
    v1::JobState last = v1::JOB_STATE_UNSPECIFIED;
    bool seen = false;
  };

  std::vector<std::unique_ptr<v1::QuantService::Stub>> stubs_;
  int64_t next_ = 0;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Reader>> readers_ ABSL_GUARDED_BY(mu_);
  Tally tally_ ABSL_GUARDED_BY(mu_);
};

}  // namespace caliber::testing
