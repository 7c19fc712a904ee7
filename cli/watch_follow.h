// Following a job to its end (`caliber watch`, `submit --wait`), through coordinator restarts:
// when the event stream breaks for a transport reason (the coordinator was killed, restarts,
// or is briefly unreachable), reconnect with exponential backoff and resume from the job's
// current state, which the coordinator sends first on every new stream. Only when contact is
// lost for longer than the reconnect timeout does the follower give up, with its own exit code
// (kExitLostContact): the job may well still be running, so it must not read as "failed".
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/service_client.h"

namespace caliber::cli {

struct FollowOptions {
  std::string command = "watch";  // for messages: "caliber <command>: ..."
  std::string coordinator;        // address, for messages
  absl::Duration reconnect_timeout = absl::Minutes(5);
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(5);
};

// A fresh client (new channel) for each reconnection attempt: a channel that saw its server
// die backs off on its own (up to minutes), which would outlast a short reconnect timeout.
using Connector = std::function<absl::StatusOr<ServiceClient>()>;

// Streams job_id's events to stderr, prints its details to stdout at the end, and returns the
// exit code: ExitCodeOf(job) for a job that ended, kExitFailed when the coordinator refuses
// (unknown job, bad token, ...), kExitLostContact after reconnect_timeout without contact.
int FollowJob(ServiceClient client, const Connector& reconnect, const std::string& job_id,
              const FollowOptions& options);

}  // namespace caliber::cli
