// JobManager's worker registry bounds: a worker token lets a caller register any number of
// worker ids, so the registry is capped (options_.max_workers) and lost workers are forgotten
// once nothing needs their record (options_.lost_worker_ttl after their last heartbeat, when
// no assignment names them any more: their stages have moved).
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "coordinator/job_manager.h"
#include "coordinator/job_manager_internal.h"

namespace caliber::coordinator {
namespace internal {

absl::Status CheckWorkerIdentity(const v1::RegisterWorkerRequest& request) {
  constexpr size_t kMaxIdBytes = 256, kMaxAddressBytes = 512;
  if (request.worker_id().empty() || request.address().empty()) {
    return absl::InvalidArgumentError("worker_id and address are required");
  }
  if (request.worker_id().size() > kMaxIdBytes || request.address().size() > kMaxAddressBytes) {
    return absl::InvalidArgumentError(absl::StrCat("worker_id must be at most ", kMaxIdBytes,
                                                   " bytes and address at most ", kMaxAddressBytes));
  }
  return absl::OkStatus();
}

}  // namespace internal

bool JobManager::WorkerInUse(const std::string& worker_id) const {
  for (const auto& [id, a] : assignments_) {
    if (a.worker_id == worker_id) return true;
  }
  return false;
}

void JobManager::ForgetLostWorkers(absl::Time now) {
  bool forgot = false;
  for (auto it = workers_.begin(); it != workers_.end();) {
    const Worker& w = it->second;
    if (!w.live && now - w.last_seen >= options_.lost_worker_ttl && !WorkerInUse(w.id)) {
      std::fprintf(stderr, "caliber-coordinator: forgot lost worker %s (silent for %s)\n", w.id.c_str(),
                   absl::FormatDuration(absl::Trunc(now - w.last_seen, absl::Seconds(1))).c_str());
      it = workers_.erase(it);
      forgot = true;
    } else {
      ++it;
    }
  }
  if (forgot) UpdateGauges();
}

absl::Status JobManager::MakeRoomForWorker() {
  if (static_cast<int64_t>(workers_.size()) < options_.max_workers) return absl::OkStatus();
  auto oldest = workers_.end();
  for (auto it = workers_.begin(); it != workers_.end(); ++it) {
    if (it->second.live || WorkerInUse(it->first)) continue;
    if (oldest == workers_.end() || it->second.last_seen < oldest->second.last_seen) oldest = it;
  }
  if (oldest == workers_.end()) {
    return absl::ResourceExhaustedError(absl::StrCat("the coordinator has ", workers_.size(),
                                                     " workers registered, its limit (--max-workers)"));
  }
  std::fprintf(stderr, "caliber-coordinator: forgot lost worker %s to register another\n", oldest->first.c_str());
  workers_.erase(oldest);
  return absl::OkStatus();
}

}  // namespace caliber::coordinator
