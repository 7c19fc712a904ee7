// Object storage behind one interface: `file://` (confined to configured roots, the embedded
// default) and `s3://` (AWS Signature V4 via libcurl, custom endpoints, path-style). Everything
// that reads models or writes checkpoints goes through a Storage (a router by URI scheme), so
// the coordinator, the workers and the CLI never care where bytes live.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace caliber::storage {

// Counts requests for metrics (services/metrics); called from any thread.
class StorageObserver {
 public:
  virtual ~StorageObserver() = default;
  // backend: "file" | "s3"; op: "get" | "head" | "put" | "delete" | "list";
  // bytes moved by this request; error: the request failed (after retries: one call per try).
  virtual void OnRequest(std::string_view backend, std::string_view op, int64_t bytes,
                         bool error) = 0;
};

// One backend; keys are paths inside it ("bucket/some/key" for S3, a path under a root for
// files). Errors: NotFound for a missing object, PermissionDenied for a key the backend may
// not touch, Unavailable after the retry budget for transient failures, InvalidArgument for
// malformed keys.
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  virtual absl::StatusOr<std::string> Get(std::string_view key) = 0;
  // Bytes [offset, offset + length) of the object; OutOfRange if that passes its end.
  virtual absl::StatusOr<std::string> GetRange(std::string_view key, int64_t offset,
                                               int64_t length) = 0;
  // Size of the object; NotFound if there is none.
  virtual absl::StatusOr<int64_t> Size(std::string_view key) = 0;
  // Creates or replaces the object atomically: readers see the old or the new bytes, never a
  // part (file: temp + rename; S3: single PUT, multipart above the part threshold).
  virtual absl::Status Put(std::string_view key, std::string_view data) = 0;
  // Like Put, streaming from a local file (large objects never need to be in memory).
  virtual absl::Status PutFile(std::string_view key, const std::string& local_path) = 0;
  // Downloads to a local file (written atomically).
  virtual absl::Status GetToFile(std::string_view key, const std::string& local_path) = 0;
  // OK if the object does not exist.
  virtual absl::Status Delete(std::string_view key) = 0;
  // Keys that start with `prefix`, sorted.
  virtual absl::StatusOr<std::vector<std::string>> List(std::string_view prefix) = 0;
  // Removes what is left of the "directory" `prefix` (ending in '/') once it holds no object.
  // Object stores have no directories: nothing to do. A file tree removes the empty directories
  // under the prefix and the prefix's own directory when they hold no file.
  virtual absl::Status RemoveEmptyPrefix(std::string_view prefix) {
    (void)prefix;
    return absl::OkStatus();
  }
  // OK if objects can be created under `prefix` (a "directory" such as a job's output), so a
  // job can be refused at submission rather than when it writes its first result: NotFound
  // when the container does not exist (an S3 bucket; for files, never: directories are
  // created), PermissionDenied when writing there is refused, FailedPrecondition when the
  // prefix names something that cannot hold objects (a regular file).
  virtual absl::Status CheckWritable(std::string_view prefix) = 0;
};

}  // namespace caliber::storage
