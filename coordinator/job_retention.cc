#include "coordinator/job_retention.h"

#include <algorithm>
#include <map>

namespace caliber::coordinator {

std::vector<std::string> ExpiredJobs(std::vector<FinishedJob> finished, const RetentionPolicy& policy,
                                     absl::Time now) {
  std::map<std::string, std::vector<const FinishedJob*>> by_tenant;
  for (const FinishedJob& f : finished) by_tenant[f.tenant].push_back(&f);
  std::vector<std::string> out;
  for (auto& [tenant, jobs] : by_tenant) {
    // Newest first: a job is kept while it is among the newest `max` and younger than the TTL.
    std::sort(jobs.begin(), jobs.end(), [](const FinishedJob* a, const FinishedJob* b) {
      return a->end_time != b->end_time ? a->end_time > b->end_time : a->submit_seq > b->submit_seq;
    });
    for (size_t i = 0; i < jobs.size(); ++i) {
      const bool too_many = policy.max_finished_per_tenant > 0 && i >= static_cast<size_t>(policy.max_finished_per_tenant);
      const bool too_old = policy.ttl > absl::ZeroDuration() && now - jobs[i]->end_time > policy.ttl;
      if (too_many || too_old) out.push_back(jobs[i]->id);
    }
  }
  return out;
}

}  // namespace caliber::coordinator
