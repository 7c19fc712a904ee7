#include "services/storage/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace caliber::storage {
namespace {

namespace fs = std::filesystem;

constexpr char kTempMarker[] = ".caliber-tmp-";

// Unique enough to make O_EXCL collisions rare; O_EXCL makes them harmless.
std::string TempSuffix() {
  static std::atomic<uint64_t> counter{0};
  const uint64_t mix =
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
      (static_cast<uint64_t>(::getpid()) << 32) ^ (counter.fetch_add(1) * 0x9e3779b97f4a7c15ull);
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(mix));
  return buf;
}

absl::Status FsyncDirectory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open directory ", dir.string()));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) return absl::ErrnoToStatus(error, absl::StrCat("fsync directory ", dir.string()));
  return absl::OkStatus();
}

}  // namespace

bool IsAtomicTempName(std::string_view file_name) {
  return !file_name.empty() && file_name.front() == '.' &&
         absl::StrContains(std::string(file_name), kTempMarker);
}

absl::StatusOr<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Create(
    const std::string& path) {
  const fs::path target(path);
  if (!target.has_filename()) {
    return absl::InvalidArgumentError(absl::StrCat("not a file path: ", path));
  }
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::ErrnoToStatus(ec.value(), absl::StrCat("create directory ", dir.string()));
  }
  for (int tries = 0;; ++tries) {
    const std::string temp =
        (dir / absl::StrCat(".", target.filename().string(), kTempMarker, TempSuffix())).string();
    // 0666 before the umask, like any file a program creates (mkstemp would force 0600).
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      return std::unique_ptr<AtomicFileWriter>(new AtomicFileWriter(path, temp, fd));
    }
    // ENOENT: a delete pruned the directory, empty for a moment, after we created it.
    if (errno == ENOENT && tries < 16) {
      fs::create_directories(dir, ec);
      continue;
    }
    if (errno != EEXIST || tries >= 16) {
      return absl::ErrnoToStatus(errno, absl::StrCat("create temporary file for ", path));
    }
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_path_.c_str());
  }
}

absl::Status AtomicFileWriter::Append(std::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("already committed: ", path_));
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("write ", temp_path_));
    }
    data.remove_prefix(static_cast<size_t>(n));
    bytes_written_ += n;
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Reset() {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("already committed: ", path_));
  if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("truncate ", temp_path_));
  }
  bytes_written_ = 0;
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat("already committed: ", path_));
  if (::fsync(fd_) != 0) return absl::ErrnoToStatus(errno, absl::StrCat("fsync ", temp_path_));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temp_path_.c_str());
    return absl::ErrnoToStatus(error, absl::StrCat("close ", temp_path_));
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp_path_.c_str());
    return absl::ErrnoToStatus(error, absl::StrCat("rename ", temp_path_, " to ", path_));
  }
  const fs::path target(path_);
  return FsyncDirectory(target.has_parent_path() ? target.parent_path() : fs::path("."));
}

}  // namespace caliber::storage
