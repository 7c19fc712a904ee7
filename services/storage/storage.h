// Routes URIs to object stores: file:///abs/path (must resolve, symlinks included, inside one of
// the configured roots; `..` is refused) and s3://bucket/key. The one object the rest of
// Caliber uses for bytes.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "services/storage/object_store.h"

namespace caliber::storage {

struct S3Options {
  // e.g. http://127.0.0.1:5000; "" = AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else
  // https://s3.<region>.amazonaws.com.
  std::string endpoint;
  // Left at the default (or empty), AWS_REGION / AWS_DEFAULT_REGION override it when set.
  std::string region = "us-east-1";
  bool path_style = true;    // bucket in the path (MinIO, moto) rather than in the host name
  // Credentials: these if set, else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
  // AWS_SESSION_TOKEN, else the [default] (or AWS_PROFILE) profile of the shared credentials
  // file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials; a mounted Secret in k8s).
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  std::string credentials_file;
  // Retries with exponential backoff (+ jitter) on 5xx, 429, timeouts and connection errors,
  // until `retry_budget_ms` is spent; then Unavailable. The budget bounds each request with
  // all its retries (a multipart upload makes several): each try's timeouts shrink to what is
  // left of it (see request_timeouts.h), so a request to a hung store ends within the budget
  // plus 1 s plus its bytes / min throughput, and the first such request fails the operation.
  int max_attempts = 8;
  int initial_backoff_ms = 100;
  int max_backoff_ms = 5000;
  int retry_budget_ms = 60000;
  // One request (try) fails, and is retried, when no byte has moved for this long, or when it
  // has lasted this long plus its bytes at `min_throughput_bytes_per_s`.
  int request_timeout_ms = 30000;
  int connect_timeout_ms = 10000;
  int64_t min_throughput_bytes_per_s = 1 << 20;
  int64_t multipart_threshold = 64ll << 20;  // Put/PutFile above this use multipart upload
  int64_t multipart_part_size = 16ll << 20;  // >= 5 MiB (S3's minimum part)
};

struct StorageOptions {
  // Directories file:// URIs may touch (absolute; symlinks resolved). Empty: file:// refused.
  std::vector<std::string> file_roots;
  S3Options s3;
  StorageObserver* observer = nullptr;  // not owned; may be null
};

class Storage {
 public:
  static absl::StatusOr<std::unique_ptr<Storage>> Create(StorageOptions options);
  ~Storage();

  absl::StatusOr<std::string> Read(std::string_view uri);
  absl::StatusOr<std::string> ReadRange(std::string_view uri, int64_t offset, int64_t length);
  absl::StatusOr<int64_t> Size(std::string_view uri);  // NotFound if absent
  absl::StatusOr<bool> Exists(std::string_view uri);
  absl::Status Write(std::string_view uri, std::string_view data);
  absl::Status WriteFile(std::string_view uri, const std::string& local_path);
  absl::Status ReadToFile(std::string_view uri, const std::string& local_path);
  absl::Status Delete(std::string_view uri);
  // URIs (same scheme) of the objects under `uri_prefix`, sorted.
  absl::StatusOr<std::vector<std::string>> List(std::string_view uri_prefix);
  // Removes the empty remains of `uri_prefix` (ending in '/'): directories on file://,
  // nothing on s3:// (see ObjectStore::RemoveEmptyPrefix).
  absl::Status RemoveEmptyPrefix(std::string_view uri_prefix);

  // InvalidArgument for a URI that is malformed or of an unknown scheme; PermissionDenied for a
  // file:// path outside the roots. Does not touch the object.
  absl::Status CheckUri(std::string_view uri) const;
  // Whether objects can be created under `uri_prefix` (an output location): see
  // ObjectStore::CheckWritable. Touches the store.
  absl::Status CheckWritable(std::string_view uri_prefix);

 private:
  explicit Storage(StorageOptions options);
  struct Resolved {
    ObjectStore* store;
    std::string key;
  };
  absl::StatusOr<Resolved> Resolve(std::string_view uri) const;
  StorageOptions options_;
  std::unique_ptr<ObjectStore> file_;
  std::unique_ptr<ObjectStore> s3_;
};

// "a/b" + "c" -> "a/b/c" (exactly one slash between).
std::string JoinUri(std::string_view base, std::string_view name);

}  // namespace caliber::storage
