// Durable job records: one file per job under DIR/jobs/, replaced atomically (write a temp
// file, fsync, rename, fsync the directory) so a crash leaves the old or the new record, and a
// restarted coordinator finds every job where it was.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "caliber/v1/coordinator_state.pb.h"

namespace caliber::coordinator {

class JobStore {
 public:
  // Creates DIR/jobs if needed.
  static absl::StatusOr<JobStore> Open(const std::string& dir);

  absl::Status Save(const v1::JobRecord& record) const;
  // Deletes a job's record durably (unlink, fsync the directory); a missing record is fine.
  absl::Status Remove(const std::string& job_id) const;
  // Every record; a file that does not parse is reported, not skipped silently.
  absl::StatusOr<std::vector<v1::JobRecord>> LoadAll() const;

 private:
  explicit JobStore(std::string jobs_dir) : jobs_dir_(std::move(jobs_dir)) {}
  std::string jobs_dir_;
};

}  // namespace caliber::coordinator
