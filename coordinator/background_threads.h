// Threads the coordinator starts for one piece of work each (a job's preparation, assembly,
// transform fold, cleanup). Finished threads are joined as new ones start, so a long-running
// coordinator holds only the threads still working — an unjoined thread keeps its stack.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace caliber::coordinator {

class BackgroundThreads {
 public:
  BackgroundThreads() = default;
  ~BackgroundThreads() { JoinAll(); }
  BackgroundThreads(const BackgroundThreads&) = delete;
  BackgroundThreads& operator=(const BackgroundThreads&) = delete;

  // Starts `fn` on a new thread, after joining the threads that have finished.
  void Spawn(std::function<void()> fn) ABSL_LOCKS_EXCLUDED(mu_);
  // Joins the threads that have finished; returns how many are still running.
  size_t Reap() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits for every thread, including any a running one spawns meanwhile.
  void JoinAll() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  size_t ReapLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::list<Entry> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace caliber::coordinator
