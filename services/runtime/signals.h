// Termination signals handled synchronously: SIGTERM/SIGINT are collected by a waiting thread,
// so shutdown runs as ordinary code (locks, gRPC Shutdown, flushing state) instead of inside an
// async-signal handler.
//
// Blocking the signals in main is not enough on its own: shared libraries may start threads
// before main (OpenBLAS starts its thread pool from a library constructor), and a process-
// directed signal goes to any thread that does not block it. So BlockTerminationSignals also
// installs a tiny handler that, in whichever thread it runs, writes the signal number to a pipe;
// the waiters watch both the pipe and the signals left pending (signalfd).
#pragma once

#include <atomic>
#include <functional>
#include <thread>

namespace caliber::runtime {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (pthread_sigmask) and installs the
// forwarding handler for SIGTERM/SIGINT (and one for SIGHUP feeding HangupWatcher; without a
// watcher SIGHUP does nothing: a closed terminal does not kill a daemon). Call it first thing
// in main: threads inherit the mask, so every thread gRPC
// and others start later leaves the signals to the waiters. Idempotent. Child processes
// inherit the blocked mask: reset it (posix_spawnattr_setsigmask) when spawning programs that
// must be stoppable with SIGTERM/SIGINT.
void BlockTerminationSignals();

// Waits for SIGTERM or SIGINT and returns it. Needs BlockTerminationSignals first.
int WaitForTerminationSignal();

// A thread that waits for SIGTERM/SIGINT and then runs `on_signal(signo)` once, as ordinary code
// on a thread of its own, while it keeps waiting: a second signal, while on_signal runs or after,
// exits the process at once with status 128 + signo (the operator's "stop now" when a graceful
// shutdown drags). Stop() ends the waiting without running the callback.
class TerminationWaiter {
 public:
  // Calls BlockTerminationSignals (in the calling thread) and starts waiting.
  explicit TerminationWaiter(std::function<void(int)> on_signal);
  // Stop()s.
  ~TerminationWaiter();

  TerminationWaiter(const TerminationWaiter&) = delete;
  TerminationWaiter& operator=(const TerminationWaiter&) = delete;

  // Wakes the waiting thread and joins it; if on_signal is running, waits for it to return.
  // Idempotent; not from within on_signal (it would wait for itself).
  void Stop();

  // The signal that triggered on_signal, 0 if none yet.
  int signal() const { return signal_.load(); }

 private:
  void Run();

  std::function<void(int)> on_signal_;
  int stop_read_fd_ = -1;  // a byte written to stop_write_fd_ ends Run()
  int stop_write_fd_ = -1;
  std::atomic<int> signal_{0};
  std::thread thread_;           // waits
  std::thread callback_thread_;  // runs on_signal_; set by thread_, joined after it
};

// A thread that runs `on_hangup` for every SIGHUP (operators send it after rotating TLS files).
// Needs BlockTerminationSignals first (which turns SIGHUP from "terminate" into a forwarded
// signal). Signals arriving while on_hangup runs are merged into one more run.
class HangupWatcher {
 public:
  explicit HangupWatcher(std::function<void()> on_hangup);
  ~HangupWatcher();  // stops and joins; waits for a running on_hangup

  HangupWatcher(const HangupWatcher&) = delete;
  HangupWatcher& operator=(const HangupWatcher&) = delete;

 private:
  std::function<void()> on_hangup_;
  int stop_read_fd_ = -1;
  int stop_write_fd_ = -1;
  std::thread thread_;
};

}  // namespace caliber::runtime
