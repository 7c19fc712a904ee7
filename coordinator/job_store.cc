#include "coordinator/job_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace caliber::coordinator {
namespace fs = std::filesystem;
namespace {

// Errors keep their errno's meaning (ENOSPC, EDQUOT -> ResourceExhausted), and every failure
// removes the temporary: a full disk leaves the old record and nothing half-written.
absl::Status WriteDurably(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("create ", tmp.string()));
  auto fail = [&](const char* what) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    return absl::ErrnoToStatus(error, absl::StrCat(what, " ", tmp.string()));
  };
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return fail("write");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(tmp.c_str());
    return absl::ErrnoToStatus(error, absl::StrCat("close ", tmp.string()));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(tmp.c_str());
    return absl::ErrnoToStatus(error, absl::StrCat("rename ", tmp.string()));
  }
  // The rename itself must survive a crash before the change is acknowledged.
  const int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path.parent_path().string()));
  const bool synced = ::fsync(dir) == 0;
  const int error = errno;
  ::close(dir);
  if (!synced) return absl::ErrnoToStatus(error, absl::StrCat("fsync ", path.parent_path().string()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<JobStore> JobStore::Open(const std::string& dir) {
  const fs::path jobs = fs::path(dir) / "jobs";
  std::error_code ec;
  fs::create_directories(jobs, ec);
  if (ec) return absl::ErrnoToStatus(ec.value(), absl::StrCat("create ", jobs.string()));
  // A crash (or a full disk before this fix) may have left temporaries: never records.
  for (const auto& entry : fs::directory_iterator(jobs, ec)) {
    if (entry.path().extension() == ".tmp") fs::remove(entry.path(), ec);
  }
  return JobStore(jobs.string());
}

absl::Status JobStore::Save(const v1::JobRecord& record) const {
  std::string bytes;
  if (!record.SerializeToString(&bytes)) return absl::InternalError("cannot serialize job record");
  return WriteDurably(fs::path(jobs_dir_) / (record.job().job_id() + ".job"), bytes);
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
