#include "services/runtime/signals.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <utility>

namespace caliber::runtime {
namespace {

// Written by the handler (any thread), read by the waiters.
int g_signal_pipe[2] = {-1, -1};
// The same for SIGHUP, read by HangupWatcher.
int g_hangup_pipe[2] = {-1, -1};

void ForwardSignal(int signo) {
  const int saved = errno;
  const unsigned char byte = static_cast<unsigned char>(signo);
  // Non-blocking: with the pipe full, enough signals are queued already.
  [[maybe_unused]] const ssize_t n = write(g_signal_pipe[1], &byte, 1);
  errno = saved;
}

void ForwardHangup(int) {
  const int saved = errno;
  const unsigned char byte = SIGHUP;
  [[maybe_unused]] const ssize_t n = write(g_hangup_pipe[1], &byte, 1);
  errno = saved;
}

sigset_t SignalSet(bool with_hup) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (with_hup) sigaddset(&set, SIGHUP);
  return set;
}

void InstallHandlers() {
  if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) std::abort();  // out of descriptors
  if (pipe2(g_hangup_pipe, O_CLOEXEC | O_NONBLOCK) != 0) std::abort();
  struct sigaction action {};
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  action.sa_handler = ForwardSignal;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  action.sa_handler = ForwardHangup;
  sigaction(SIGHUP, &action, nullptr);
}

// Waits for SIGTERM/SIGINT: forwarded through the pipe (delivered to a thread that does not block
// them) or pending (process-directed with every thread blocking them, or directed at this
// thread). Returns 0 when `stop_fd` (if >= 0) becomes readable.
int Wait(int stop_fd) {
  const sigset_t set = SignalSet(/*with_hup=*/false);
  const int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) std::abort();
  int signo = 0;
  while (signo == 0) {
    pollfd fds[3] = {{g_signal_pipe[0], POLLIN, 0}, {sfd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    const int n = poll(fds, stop_fd >= 0 ? 3 : 2, -1);
    if (n < 0) continue;  // EINTR
    if (stop_fd >= 0 && fds[2].revents != 0) break;
    if (fds[1].revents != 0) {
      signalfd_siginfo info{};
      if (read(sfd, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
        signo = static_cast<int>(info.ssi_signo);
        break;
      }
    }
    if (fds[0].revents != 0) {
      unsigned char byte = 0;
      if (read(g_signal_pipe[0], &byte, 1) == 1) signo = byte;
    }
  }
  close(sfd);
  return signo;
}

}  // namespace

void BlockTerminationSignals() {
  static std::once_flag once;
  std::call_once(once, InstallHandlers);
  const sigset_t set = SignalSet(/*with_hup=*/true);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTerminationSignal() {
  BlockTerminationSignals();  // the pipe must exist; blocking again is harmless
  return Wait(/*stop_fd=*/-1);
}

TerminationWaiter::TerminationWaiter(std::function<void(int)> on_signal)
    : on_signal_(std::move(on_signal)) {
  BlockTerminationSignals();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) std::abort();  // out of descriptors
  stop_read_fd_ = fds[0];
  stop_write_fd_ = fds[1];
  thread_ = std::thread([this] { Run(); });
}

TerminationWaiter::~TerminationWaiter() {
  Stop();
  close(stop_read_fd_);
  close(stop_write_fd_);
}

void TerminationWaiter::Run() {
  const int signo = Wait(stop_read_fd_);
  if (signo == 0) return;  // stopped
  signal_.store(signo);
  // The callback runs beside this thread so that the wait for a second signal starts at once:
  // a graceful shutdown may take a while (draining jobs) and a second signal means "now".
  if (on_signal_) callback_thread_ = std::thread(on_signal_, signo);
  const int second = Wait(stop_read_fd_);
  if (second == 0) return;
  std::_Exit(128 + second);
}

void TerminationWaiter::Stop() {
  if (!thread_.joinable()) return;
  const char byte = 1;
  while (write(stop_write_fd_, &byte, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
  // After joining thread_, which is what sets callback_thread_.
  if (callback_thread_.joinable()) callback_thread_.join();
}

HangupWatcher::HangupWatcher(std::function<void()> on_hangup) : on_hangup_(std::move(on_hangup)) {
  BlockTerminationSignals();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) std::abort();  // out of descriptors
  stop_read_fd_ = fds[0];
  stop_write_fd_ = fds[1];
  thread_ = std::thread([this] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    const int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) std::abort();
    while (true) {
      pollfd watched[3] = {{g_hangup_pipe[0], POLLIN, 0}, {sfd, POLLIN, 0}, {stop_read_fd_, POLLIN, 0}};
      if (poll(watched, 3, -1) < 0) continue;  // EINTR
      if (watched[2].revents != 0) break;
      // Drain both sources: several signals in a row mean one more reload.
      unsigned char bytes[64];
      while (read(g_hangup_pipe[0], bytes, sizeof(bytes)) > 0) {
      }
      signalfd_siginfo info{};
      while (read(sfd, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
      }
      if (on_hangup_) on_hangup_();
    }
    close(sfd);
  });
}

HangupWatcher::~HangupWatcher() {
  const char byte = 1;
  while (write(stop_write_fd_, &byte, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
  close(stop_read_fd_);
  close(stop_write_fd_);
}

}  // namespace caliber::runtime
