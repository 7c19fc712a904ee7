// Finished threads are joined as new ones start, so their stacks do not pile up.
#include "coordinator/background_threads.h"

#include <gtest/gtest.h>

#include <atomic>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace caliber::coordinator {
namespace {

TEST(BackgroundThreadsTest, FinishedThreadsAreJoined) {
  BackgroundThreads threads;
  std::atomic<int> ran{0};
  for (int i = 0; i < 200; ++i) {
    absl::Notification done;
    threads.Spawn([&] {
      ran.fetch_add(1);
      done.Notify();
    });
    done.WaitForNotification();
  }
  // Every function has returned; the threads are joined as they mark themselves done, without
  // JoinAll (a thread is done a moment after its function returns: poll, bounded).
  size_t left = threads.Reap();
  for (int i = 0; i < 10000 && left > 0; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
    left = threads.Reap();
  }
  EXPECT_EQ(left, 0u);
  EXPECT_EQ(ran.load(), 200);
}

TEST(BackgroundThreadsTest, OnlyRunningThreadsAreKept) {
  BackgroundThreads threads;
  absl::Notification release;
  threads.Spawn([&] { release.WaitForNotification(); });
  for (int i = 0; i < 50; ++i) {
    std::atomic<bool> finished{false};
    threads.Spawn([&] { finished = true; });
    while (!finished) {
    }
  }
  // The 50 short threads are reaped (allow the last one a moment to mark itself done); the
  // blocked one stays.
  size_t left = threads.Reap();
  for (int i = 0; i < 10000 && left > 1; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
    left = threads.Reap();
  }
  EXPECT_EQ(left, 1u);
  release.Notify();
  threads.JoinAll();
  EXPECT_EQ(threads.Reap(), 0u);
}

TEST(BackgroundThreadsTest, JoinAllWaitsForThreadsSpawnedByThreads) {
  BackgroundThreads threads;
  std::atomic<int> ran{0};
  threads.Spawn([&] {
    ran.fetch_add(1);
    threads.Spawn([&] { ran.fetch_add(1); });
  });
  threads.JoinAll();
  EXPECT_EQ(ran.load(), 2);
}

}  // namespace
}  // namespace caliber::coordinator
