#include "coordinator/background_threads.h"

namespace caliber::coordinator {

void BackgroundThreads::Spawn(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  ReapLocked();
  auto done = std::make_shared<std::atomic<bool>>(false);
  threads_.push_back(Entry{std::thread([fn = std::move(fn), done]() {
                             fn();
                             done->store(true, std::memory_order_release);
                           }),
                           done});
}

size_t BackgroundThreads::ReapLocked() {
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (it->done->load(std::memory_order_acquire)) {
      it->thread.join();  // returns at once: the function has returned
      it = threads_.erase(it);
    } else {
      ++it;
    }
  }
  return threads_.size();
}

size_t BackgroundThreads::Reap() {
  absl::MutexLock lock(&mu_);
  return ReapLocked();
}

void BackgroundThreads::JoinAll() {
  while (true) {
    std::list<Entry> threads;
    {
      absl::MutexLock lock(&mu_);
      threads.swap(threads_);
    }
    if (threads.empty()) return;
    for (Entry& e : threads) e.thread.join();
  }
}

}  // namespace caliber::coordinator
