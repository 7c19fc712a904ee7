#include "coordinator/job_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "services/storage/atomic_file.h"

namespace caliber::coordinator {
namespace fs = std::filesystem;

absl::StatusOr<JobStore> JobStore::Open(const std::string& dir) {
  const fs::path jobs = fs::path(dir) / "jobs";
  std::error_code ec;
  fs::create_directories(jobs, ec);
  if (ec) return absl::ErrnoToStatus(ec.value(), absl::StrCat("create ", jobs.string()));
  // A crash may have left temporaries (ours, or "*.job.tmp" of older versions): never records.
  for (const auto& entry : fs::directory_iterator(jobs, ec)) {
    const std::string name = entry.path().filename().string();
    if (storage::IsAtomicTempName(name) || entry.path().extension() == ".tmp") fs::remove(entry.path(), ec);
  }
  return JobStore(jobs.string());
}

absl::Status JobStore::Save(const v1::JobRecord& record) const {
  std::string bytes;
  if (!record.SerializeToString(&bytes)) return absl::InternalError("cannot serialize job record");
  // Temporary, fsync, rename, fsync the directory; errors keep their errno (a full disk is
  // ResourceExhausted) and a failure removes the temporary.
  absl::StatusOr<std::unique_ptr<storage::AtomicFileWriter>> out =
      storage::AtomicFileWriter::Create((fs::path(jobs_dir_) / (record.job().job_id() + ".job")).string());
  if (!out.ok()) return out.status();
  if (absl::Status s = (*out)->Append(bytes); !s.ok()) return s;
  return (*out)->Commit();
}

absl::Status JobStore::Remove(const std::string& job_id) const {
  const fs::path path = fs::path(jobs_dir_) / (job_id + ".job");
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot remove ", path.string()));
  }
  const int dir = ::open(jobs_dir_.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", jobs_dir_));
  const bool synced = ::fsync(dir) == 0;
  ::close(dir);
  if (!synced) return absl::InternalError(absl::StrCat("cannot fsync ", jobs_dir_));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::JobRecord>> JobStore::LoadAll() const {
  std::vector<v1::JobRecord> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(jobs_dir_, ec)) {
    if (entry.path().extension() != ".job") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    v1::JobRecord record;
    if (!in || !record.ParseFromString(ss.str())) {
      return absl::DataLossError(absl::StrCat("job record ", entry.path().string(), " is corrupt"));
    }
    out.push_back(std::move(record));
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", jobs_dir_, ": ", ec.message()));
  return out;
}

}  // namespace caliber::coordinator
