// Writing a local file so that readers see its old bytes or its new bytes, never a part: the
// data goes to a temporary file in the same directory (a rename cannot cross file systems),
// is fsync'ed, and the temporary is renamed over the target; the directory is fsync'ed too so
// that the rename survives a crash. Abandoning the writer (or any failed step) removes the
// temporary. Used by the file store's Put and by every download to a local file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace caliber::storage {

// Temporaries are named ".<target name>.caliber-tmp-<random>"; listings skip such names so a
// write in progress is never listed as an object.
bool IsAtomicTempName(std::string_view file_name);

class AtomicFileWriter {
 public:
  // Creates the temporary next to `path`, creating missing parent directories first.
  static absl::StatusOr<std::unique_ptr<AtomicFileWriter>> Create(const std::string& path);
  ~AtomicFileWriter();  // removes the temporary unless Commit succeeded
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  absl::Status Append(std::string_view data);
  // Discards what was appended (a download that is retried from its start).
  absl::Status Reset();
  // fsync, rename over the target, fsync the directory. The writer is spent afterwards.
  absl::Status Commit();

  const std::string& path() const { return path_; }
  int64_t bytes_written() const { return bytes_written_; }

 private:
  AtomicFileWriter(std::string path, std::string temp_path, int fd)
      : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {}
  std::string path_;
  std::string temp_path_;
  int fd_;
  int64_t bytes_written_ = 0;
};

}  // namespace caliber::storage
