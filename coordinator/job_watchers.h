// WatchQuantJob streams as gRPC callback reactors: a watcher is a small object plus gRPC's
// per-call state, never a thread. JobManager publishes every job change here (cheaply, under its
// own mutex); one dispatcher thread fans a change out to the job's watchers. Each watcher has
// at most one write in flight and always writes the job's latest state, so intermediate states
// coalesce and a slow client costs O(1) memory however fast the job changes.
//
// A stream ends OK right after the event carrying a terminal state (SUCCEEDED, FAILED,
// CANCELLED), CANCELLED when the client goes away, UNAVAILABLE at Shutdown(),
// RESOURCE_EXHAUSTED when `max_watchers` streams are already open.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "caliber/v1/quant_service.pb.h"
#include "grpcpp/support/server_callback.h"

namespace caliber::coordinator {

class JobWatchers {
 public:
  explicit JobWatchers(int64_t max_watchers);
  // Stops the dispatcher. Every stream must have ended (Shutdown(), then the gRPC server's
  // Shutdown, which waits for the reactors' OnDone).
  ~JobWatchers();
  JobWatchers(const JobWatchers&) = delete;
  JobWatchers& operator=(const JobWatchers&) = delete;

  // JobManager's change hook, called with its mutex held: a hash lookup, plus one copy of the
  // job when somebody watches it. Never blocks on a client.
  void Publish(const v1::QuantJob& job, int64_t version) ABSL_LOCKS_EXCLUDED(mu_);

  // The job as the watching tenant may see it and its version, or NotFound.
  using Snapshot = std::function<absl::StatusOr<v1::QuantJob>(int64_t* version)>;
  // The reactor serving one WatchQuantJob call on `job_id`. `snapshot` is called once, after
  // the watcher is registered, so no change between the two is missed.
  grpc::ServerWriteReactor<v1::QuantJobEvent>* Watch(const std::string& job_id, const Snapshot& snapshot)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A reactor that ends the call at once with `status` (e.g. UNAUTHENTICATED).
  static grpc::ServerWriteReactor<v1::QuantJobEvent>* Reject(const grpc::Status& status);

  // Ends every stream with UNAVAILABLE (after its write in flight, if any); new watches are
  // refused with UNAVAILABLE.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // Streams not yet done (OnDone not run): what --max-watchers bounds.
  int64_t open_streams() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Watcher;
  // What a watcher does next; decided under mu_, carried out after releasing it.
  struct Action {
    Watcher* watcher = nullptr;
    std::shared_ptr<const v1::QuantJobEvent> write;  // write this event, or
    std::unique_ptr<grpc::Status> finish;             // end the stream with this status
  };
  struct Topic {
    int64_t version = -1;                          // of `event`; -1 before the first snapshot
    std::shared_ptr<const v1::QuantJobEvent> event;  // shared by every watcher writing it
    absl::flat_hash_set<Watcher*> watchers;
    bool dirty = false;                            // queued for the dispatcher
  };

  // The next step of a watcher that has nothing in flight (none when it is up to date).
  Action Next(Watcher& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unregister(Watcher& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Run(Action& action);
  void DispatchLoop() ABSL_LOCKS_EXCLUDED(mu_);

  const int64_t max_watchers_;
  mutable absl::Mutex mu_;
  absl::CondVar work_;  // dirty_ has entries, or stop_
  absl::flat_hash_map<std::string, Topic> topics_ ABSL_GUARDED_BY(mu_);  // watched jobs only
  std::vector<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  int64_t open_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread dispatcher_;
};

}  // namespace caliber::coordinator
