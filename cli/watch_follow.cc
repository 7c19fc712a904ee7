#include "cli/watch_follow.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <random>
#include <thread>

#include "cli/exit_codes.h"
#include "grpcpp/grpcpp.h"
#include "services/job_state.h"

namespace caliber::cli {
namespace {

// Transport trouble, worth a reconnection; anything else is the coordinator's answer.
// (CANCELLED reaches us only from the server side, e.g. a coordinator shutting down; UNKNOWN
// is how gRPC reports some torn streams, "Stream removed".)
bool Retryable(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::UNKNOWN:
      return true;
    default:
      return false;
  }
}

std::string StatusText(const grpc::Status& s) {
  if (s.ok()) return "the event stream ended before the job did";
  return FromGrpc(s).ToString();
}

// Full jitter: a restarted coordinator is not hit by every follower at the same instant.
absl::Duration Jittered(absl::Duration d) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> f(0.5, 1.0);
  return d * f(rng);
}

}  // namespace

int FollowJob(ServiceClient client, const Connector& reconnect, const std::string& job_id,
              const FollowOptions& options) {
  const char* cmd = options.command.c_str();
  const bool tty = isatty(fileno(stderr));
  v1::WatchQuantJobRequest request;
  request.set_job_id(job_id);
  v1::QuantJob last;
  bool have_last = false;
  bool line_open = false;  // a progress line without its newline on the terminal
  std::optional<absl::Time> lost_since;
  absl::Duration backoff = options.initial_backoff;
  const auto end_line = [&] {
    if (line_open) std::fprintf(stderr, "\n");
    line_open = false;
  };
  for (;;) {
    auto context = client.Context(0);
    std::unique_ptr<grpc::ClientReader<v1::QuantJobEvent>> reader =
        client.stub->WatchQuantJob(context.get(), request);
    v1::QuantJobEvent event;
    while (reader->Read(&event)) {
      if (lost_since) {
        end_line();
        std::fprintf(stderr, "caliber %s: reconnected to the coordinator after %s\n", cmd,
                     absl::FormatDuration(absl::Trunc(absl::Now() - *lost_since, absl::Milliseconds(100))).c_str());
        lost_since.reset();
      }
      backoff = options.initial_backoff;
      last = event.job();
      have_last = true;
      std::fprintf(stderr, tty ? "\r\033[K%s" : "%s\n", JobLine(last).c_str());
      line_open = tty;
    }
    const grpc::Status s = reader->Finish();
    if (s.ok() && have_last && IsTerminal(last.state())) {
      end_line();
      std::printf("%s", JobDetails(last).c_str());
      return ExitCodeOf(last);
    }
    if (!s.ok() && !Retryable(s.error_code())) {
      end_line();
      std::fprintf(stderr, "caliber %s: %s\n", cmd, FromGrpc(s).ToString().c_str());
      return kExitFailed;
    }
    const absl::Time now = absl::Now();
    if (!lost_since) {
      lost_since = now;
      end_line();
      std::fprintf(stderr, "caliber %s: %s the coordinator at %s (%s); reconnecting for up to %s\n", cmd,
                   have_last ? "lost contact with" : "cannot reach", options.coordinator.c_str(),
                   StatusText(s).c_str(), absl::FormatDuration(options.reconnect_timeout).c_str());
    }
    const absl::Duration left = options.reconnect_timeout - (now - *lost_since);
    if (left <= absl::ZeroDuration()) {
      end_line();
      std::fprintf(stderr,
                   "caliber %s: no contact with the coordinator at %s for %s (--reconnect-timeout; last: %s); "
                   "job %s may still be running: `caliber status %s`\n",
                   cmd, options.coordinator.c_str(), absl::FormatDuration(options.reconnect_timeout).c_str(),
                   StatusText(s).c_str(), job_id.c_str(), job_id.c_str());
      return kExitLostContact;
    }
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(std::min(Jittered(backoff), left)));
    backoff = std::min(backoff * 2, options.max_backoff);
    absl::StatusOr<ServiceClient> fresh = reconnect();
    if (!fresh.ok()) {  // configuration (TLS files, token file), not the network
      std::fprintf(stderr, "caliber %s: %s\n", cmd, fresh.status().ToString().c_str());
      return kExitFailed;
    }
    client = *std::move(fresh);
  }
}

}  // namespace caliber::cli
