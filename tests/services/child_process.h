// Helper processes for tests (a moto S3 server, a scripted HTTP server, a boto3 client): start
// one with pipes on stdin and stdout, read what it prints, and make sure it is gone afterwards.
// A child gets SIGTERM when the test process dies (PR_SET_PDEATHSIG), and the helpers in
// tests/tools also exit when their stdin closes, so a crashed test leaves nothing running.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace caliber::testing {

class ChildProcess {
 public:
  // Starts argv (argv[0] looked up in PATH). stderr goes to `stderr_path` (truncated) if
  // given, else it is inherited. nullptr if fork or pipe fail.
  static std::unique_ptr<ChildProcess> Start(const std::vector<std::string>& argv,
                                             const std::string& stderr_path = "") {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return nullptr;
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]);
      ::close(in[1]);
      return nullptr;
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return nullptr;
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      if (!stderr_path.empty()) {
        const int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (err >= 0) ::dup2(err, 2);
      }
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    return std::unique_ptr<ChildProcess>(new ChildProcess(pid, in[1], out[0]));
  }

  ~ChildProcess() { Stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // One line of the child's stdout (without the newline), or nullopt at EOF or timeout.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(stdout_, chunk, sizeof(chunk));
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  // Everything the child writes to stdout until it exits; then its exit status (-1 if it
  // was killed by a signal).
  int ReadAllAndWait(std::string* out) {
    out->swap(buffer_);
    char chunk[4096];
    ssize_t n;
    while ((n = ::read(stdout_, chunk, sizeof(chunk))) > 0)
      out->append(chunk, static_cast<size_t>(n));
    return Wait();
  }

  // Closes stdin (the tools exit on EOF), then SIGTERM after a grace period, SIGKILL after
  // another; reaps the child.
  void Stop() {
    if (pid_ <= 0) return;
    CloseStdin();
    for (int i = 0; i < 40; ++i) {  // 2 s of grace
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return Forget();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 40; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return Forget();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    Forget();
  }

  void CloseStdin() {
    if (stdin_ >= 0) ::close(stdin_);
    stdin_ = -1;
  }

 private:
  ChildProcess(pid_t pid, int stdin_fd, int stdout_fd)
      : pid_(pid), stdin_(stdin_fd), stdout_(stdout_fd) {}

  int Wait() {
    CloseStdin();
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) status = -1;
    Forget();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  void Forget() {
    pid_ = -1;
    CloseStdin();
    if (stdout_ >= 0) ::close(stdout_);
    stdout_ = -1;
  }

  pid_t pid_;
  int stdin_;
  int stdout_;
  std::string buffer_;
};

// Runs argv to completion; its exit status, with its stdout in `out`.
inline int RunCommand(const std::vector<std::string>& argv, std::string* out,
                      const std::string& stderr_path = "") {
  std::unique_ptr<ChildProcess> child = ChildProcess::Start(argv, stderr_path);
  if (child == nullptr) return -1;
  child->CloseStdin();
  return child->ReadAllAndWait(out);
}

}  // namespace caliber::testing
