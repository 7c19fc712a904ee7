// Which finished jobs the coordinator forgets: those that ended longer than a TTL ago, and per
// tenant the oldest beyond a maximum count. Their records and any scratch left are deleted; the
// checkpoints they wrote stay where they are.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace caliber::coordinator {

struct RetentionPolicy {
  absl::Duration ttl = absl::Hours(24 * 7);  // <= 0: no age limit
  int max_finished_per_tenant = 1000;        // <= 0: no count limit
};

struct FinishedJob {
  std::string id;
  std::string tenant;
  absl::Time end_time;
  int64_t submit_seq = 0;  // breaks ties in end_time: the later submission is kept
};

// The ids of `finished` to forget at `now`, in no particular order.
std::vector<std::string> ExpiredJobs(std::vector<FinishedJob> finished, const RetentionPolicy& policy, absl::Time now);

}  // namespace caliber::coordinator
