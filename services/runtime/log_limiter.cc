#include "services/runtime/log_limiter.h"

#include <grpc/support/log.h>

#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/stubs/logging.h"

namespace caliber::runtime {

LogLimiter::LogLimiter(int burst, absl::Duration window, Sink sink)
    : burst_(burst), window_(window), sink_(std::move(sink)) {}

void LogLimiter::FlushEndedLocked(absl::Time now) {
  for (auto it = kinds_.begin(); it != kinds_.end();) {
    Kind& k = it->second;
    if (now - k.window_start < window_) {
      ++it;
      continue;
    }
    if (k.suppressed > 0) {
      sink_(absl::StrCat("suppressed ", k.suppressed, " similar lines in the last ",
                         absl::FormatDuration(window_), ": ", k.last));
    }
    it = kinds_.erase(it);  // the next line of this kind opens a new window
  }
}

void LogLimiter::Flush(absl::Time now) {
  absl::MutexLock lock(&mu_);
  FlushEndedLocked(now);
}

void LogLimiter::Log(absl::string_view kind, absl::string_view line, absl::Time now) {
  absl::MutexLock lock(&mu_);
  FlushEndedLocked(now);
  auto it = kinds_.find(kind);
  if (it == kinds_.end()) {
    const absl::string_view key = kinds_.size() < kMaxKinds ? kind : absl::string_view("other");
    it = kinds_.try_emplace(std::string(key), Kind{now, 0, 0, {}}).first;
  }
  Kind& k = it->second;
  if (k.printed < burst_) {
    ++k.printed;
    sink_(line);
    return;
  }
  ++k.suppressed;
  k.last = std::string(line.substr(0, 200));
}

namespace {

// Never destroyed: gRPC's threads may log while the process exits.
LogLimiter& Limiter() {
  static LogLimiter* limiter = new LogLimiter(5, absl::Seconds(30), [](absl::string_view line) {
    std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
  });
  return *limiter;
}

void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line, const std::string& message) {
  static constexpr const char* kLevels[] = {"INFO", "WARNING", "ERROR", "FATAL"};
  const char* name = level >= 0 && level <= 3 ? kLevels[level] : "?";
  if (level == google::protobuf::LOGLEVEL_FATAL) {  // the process ends right after: always say why
    std::fprintf(stderr, "[libprotobuf FATAL %s:%d] %s\n", file, line, message.c_str());
    return;
  }
  Limiter().Log(absl::StrCat("protobuf:", file, ":", line),
                absl::StrCat("[libprotobuf ", name, " ", file, ":", line, "] ", message));
}

void GrpcLog(gpr_log_func_args* args) {
  const char* severity = gpr_log_severity_string(args->severity);
  Limiter().Log(absl::StrCat("grpc:", args->file, ":", args->line),
                absl::StrCat("grpc ", severity, " ", args->file, ":", args->line, "] ", args->message));
}

}  // namespace

void InstallLogLimits() {
  LogLimiter& limiter = Limiter();
  google::protobuf::SetLogHandler(ProtobufLog);
  gpr_set_log_function(GrpcLog);
  std::thread([&limiter] {
    for (;;) {
      absl::SleepFor(absl::Seconds(1));
      limiter.Flush();
    }
  }).detach();
}

}  // namespace caliber::runtime
