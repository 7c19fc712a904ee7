// Rate-limited, aggregated logging for lines a remote peer can trigger. libprotobuf logs a line
// for every message it cannot parse (invalid UTF-8 in a string field, ...) and gRPC core one
// for every failed TLS handshake: without a limit a peer grows the daemon's log as fast as it
// can open connections. Each kind of line (its source file and line) prints at most
// `burst` times per window; the rest are counted and summarized once per window as
// "suppressed K similar lines in the last 30 s: <the last one>".
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace caliber::runtime {

class LogLimiter {
 public:
  using Sink = std::function<void(absl::string_view line)>;
  // At most kMaxKinds kinds are tracked; lines of further kinds share one "other" budget.
  static constexpr size_t kMaxKinds = 256;

  LogLimiter(int burst, absl::Duration window, Sink sink);

  // Writes `line` (no trailing newline) unless its kind spent its burst in the current window.
  // Also writes the summaries of kinds whose window has ended.
  void Log(absl::string_view kind, absl::string_view line, absl::Time now = absl::Now());
  // Writes the summaries of kinds whose window has ended (InstallLogLimits calls it every
  // second, so a summary follows its window even when no further line comes).
  void Flush(absl::Time now = absl::Now());

 private:
  struct Kind {
    absl::Time window_start;
    int64_t printed = 0;
    int64_t suppressed = 0;
    std::string last;  // the last suppressed line, cut to 200 bytes
  };
  void FlushEndedLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int burst_;
  const absl::Duration window_;
  const Sink sink_;
  absl::Mutex mu_;
  std::map<std::string, Kind, std::less<>> kinds_ ABSL_GUARDED_BY(mu_);
};

// Routes libprotobuf's and gRPC core's log lines through one process-wide LogLimiter writing
// to stderr (5 lines per kind per 30 s), and starts a thread that writes the summaries. Call
// once at start-up, before any thread logs (and after blocking signals: the thread inherits
// the mask).
void InstallLogLimits();

}  // namespace caliber::runtime
