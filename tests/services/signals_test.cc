#include "services/runtime/signals.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

namespace caliber::runtime {
namespace {

bool WaitUntil(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(Signals, SigtermIsCollectedNotFatal) {
  BlockTerminationSignals();
  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  EXPECT_EQ(WaitForTerminationSignal(), SIGTERM);
  ASSERT_EQ(kill(getpid(), SIGINT), 0);
  EXPECT_EQ(WaitForTerminationSignal(), SIGINT);
}

TEST(Signals, MaskIsInheritedByLaterThreads) {
  BlockTerminationSignals();
  std::atomic<bool> blocked{false};
  std::thread([&] {
    sigset_t current;
    pthread_sigmask(SIG_BLOCK, nullptr, &current);
    blocked = sigismember(&current, SIGTERM) == 1 && sigismember(&current, SIGINT) == 1 &&
              sigismember(&current, SIGHUP) == 1;
  }).join();
  EXPECT_TRUE(blocked);
}

TEST(Signals, SighupDoesNotKillTheProcess) {
  BlockTerminationSignals();
  ASSERT_EQ(kill(getpid(), SIGHUP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Still alive. Drain it if it stayed pending (no thread took it) so later tests start clean.
  sigset_t hup;
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  const timespec zero{0, 0};
  sigtimedwait(&hup, nullptr, &zero);
}

// Libraries may start threads before main (OpenBLAS does), which do not block the signals; one
// of those may receive a process-directed SIGTERM. The waiters must get it all the same.
TEST(Signals, SignalTakenByAThreadThatDoesNotBlockItIsForwarded) {
  BlockTerminationSignals();
  std::atomic<bool> stop{false};
  std::atomic<bool> ready{false};
  std::thread foreign([&] {
    const sigset_t set = [] {
      sigset_t s;
      sigemptyset(&s);
      sigaddset(&s, SIGTERM);
      sigaddset(&s, SIGINT);
      return s;
    }();
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    ready = true;
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  ASSERT_TRUE(WaitUntil([&] { return ready.load(); }));
  // The only thread not blocking SIGTERM is `foreign`, so the kernel delivers it there.
  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  EXPECT_EQ(WaitForTerminationSignal(), SIGTERM);
  stop = true;
  foreign.join();
}

TEST(TerminationWaiter, RunsCallbackOnSignal) {
  std::atomic<int> received{0};
  TerminationWaiter waiter([&](int signo) { received = signo; });
  ASSERT_EQ(kill(getpid(), SIGINT), 0);
  ASSERT_TRUE(WaitUntil([&] { return received.load() != 0; }));
  EXPECT_EQ(received.load(), SIGINT);
  EXPECT_EQ(waiter.signal(), SIGINT);
  waiter.Stop();  // wakes the wait for a second signal; the process lives on
  waiter.Stop();  // idempotent
}

TEST(TerminationWaiter, StopWithoutSignalSkipsCallback) {
  std::atomic<int> calls{0};
  {
    TerminationWaiter waiter([&](int) { ++calls; });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }  // destructor stops
  EXPECT_EQ(calls.load(), 0);
  // Process-directed signals are still collected afterwards.
  ASSERT_EQ(kill(getpid(), SIGTERM), 0);
  EXPECT_EQ(WaitForTerminationSignal(), SIGTERM);
}

TEST(TerminationWaiter, SecondSignalExitsAtOnce) {
  EXPECT_EXIT(
      {
        TerminationWaiter waiter([](int) {
          // A slow shutdown, interrupted by the operator's second signal.
          kill(getpid(), SIGTERM);
          std::this_thread::sleep_for(std::chrono::seconds(30));
        });
        kill(getpid(), SIGTERM);
        std::this_thread::sleep_for(std::chrono::seconds(30));
      },
      ::testing::ExitedWithCode(128 + SIGTERM), "");
}

}  // namespace
}  // namespace caliber::runtime
