// ObjectStore over local directories. Keys are absolute paths, and a key may only name
// something inside one of the configured roots once symlinks are resolved: a key with a `..`
// segment is refused before the file system is consulted, and a symlink inside a root that
// leads outside it is refused like any other outside path. Objects are regular files; Put
// writes a temporary next to the target and renames it into place (see atomic_file.h).
//
// The check and the use are two system calls apart, so a process that can swap directories
// for symlinks inside a root in between could still escape; roots are meant to be trees that
// only Caliber writes.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/storage/object_store.h"

namespace caliber::storage {

class FileStore : public ObjectStore {
 public:
  // `roots` must be absolute; each is resolved once here (symlinks included; a root that does
  // not exist yet is kept as written, normalized, and is created by the first Put under it).
  // No roots: every key is refused with PermissionDenied.
  static absl::StatusOr<std::unique_ptr<FileStore>> Create(const std::vector<std::string>& roots,
                                                           StorageObserver* observer = nullptr);

  // The resolved path `key` names, if the key is well-formed (absolute, no `..`, no NUL) and
  // resolves inside a root. Touches the file system only to resolve symlinks.
  absl::StatusOr<std::filesystem::path> Confine(std::string_view key) const;

  absl::StatusOr<std::string> Get(std::string_view key) override;
  absl::StatusOr<std::string> GetRange(std::string_view key, int64_t offset,
                                       int64_t length) override;
  absl::StatusOr<int64_t> Size(std::string_view key) override;
  absl::Status Put(std::string_view key, std::string_view data) override;
  absl::Status PutFile(std::string_view key, const std::string& local_path) override;
  absl::Status GetToFile(std::string_view key, const std::string& local_path) override;
  absl::Status Delete(std::string_view key) override;
  // Regular files (recursively) whose path starts with `prefix`, as paths spelled like the
  // prefix (not resolved), sorted. A prefix ending in '/' lists that directory; otherwise the
  // directory containing the prefix is walked and filtered by name.
  absl::StatusOr<std::vector<std::string>> List(std::string_view prefix) override;
  // Empty directories under `prefix` (a directory key ending in '/'), then the prefix's own
  // directory if it is empty; never a root. rmdir takes only empty directories, so a writer's
  // temporary file keeps its directory.
  absl::Status RemoveEmptyPrefix(std::string_view prefix) override;
  // Confined like any key; then the prefix, or else its nearest existing ancestor (Put creates
  // the directories in between), must be a directory this process may create entries in.
  absl::Status CheckWritable(std::string_view prefix) override;

 private:
  FileStore(std::vector<std::filesystem::path> roots, StorageObserver* observer)
      : roots_(std::move(roots)), observer_(observer) {}
  void Report(std::string_view op, int64_t bytes, const absl::Status& status) const;

  std::vector<std::filesystem::path> roots_;  // resolved
  StorageObserver* observer_;
};

}  // namespace caliber::storage
