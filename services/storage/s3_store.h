// ObjectStore over S3 (and S3-compatible servers: MinIO, moto, Ceph RGW). Keys are
// "bucket/object/key"; List takes "bucket/prefix" and returns keys in the same form.
//
// Requests are signed with SigV4 by libcurl (s3_http.h) and retried with backoff on 5xx,
// 429, S3's RequestTimeout, timeouts and connection failures (retry_policy.h); what is left
// is mapped to a status: 404 NotFound, 403 PermissionDenied, 400 InvalidArgument,
// 416 OutOfRange, exhausted retries Unavailable. Messages name the operation, the s3:// URI,
// the HTTP status and S3's error code and message.
//
// Configuration beyond S3Options (resolved once, in Create):
//  - region: S3Options::region, unless it is empty or the default "us-east-1", in which case
//    AWS_REGION, then AWS_DEFAULT_REGION, may override it (a struct cannot tell an explicit
//    "us-east-1" from the default, so the environment wins there).
//  - endpoint: S3Options::endpoint, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else
//    https://s3.<region>.amazonaws.com.
//  - credentials: see s3_credentials.h.
//  - timeouts: every try of a request has a connect bound (connect_timeout_ms), a stall bound
//    (request_timeout_ms without a byte moving) and a total bound (request_timeout_ms plus its
//    bytes at min_throughput_bytes_per_s), the first two shrunk to what is left of the retry
//    budget (request_timeouts.h). A request (with its retries) to a hung store therefore ends
//    within retry_budget_ms plus 1 s plus its bytes / min throughput, and multi-gigabyte
//    objects still get the time their size needs. Aborting a failed multipart upload is one
//    try of about a second at most, not a second budget.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "services/storage/object_store.h"
#include "services/storage/request_timeouts.h"
#include "services/storage/retry_policy.h"
#include "services/storage/s3_credentials.h"
#include "services/storage/s3_http.h"
#include "services/storage/storage.h"

namespace caliber::storage {

class S3Store : public ObjectStore {
 public:
  // S3's limits on multipart uploads.
  static constexpr int64_t kMinPartSize = 5ll << 20;
  static constexpr int64_t kMaxPartSize = 5ll << 30;
  static constexpr int64_t kMaxParts = 10000;

  // InvalidArgument for options that cannot work (no attempts, a part size outside S3's
  // limits, an endpoint that is not http(s)://host[:port]). Credentials are looked up per
  // request, so a missing credentials file is reported by the first request, not here.
  static absl::StatusOr<std::unique_ptr<S3Store>> Create(
      const S3Options& options, StorageObserver* observer = nullptr,
      const EnvLookup& env = ProcessEnvironment());
  ~S3Store() override;

  // InvalidArgument unless `key` is "bucket" or "bucket/key" with a plausible bucket name.
  absl::Status CheckKey(std::string_view key) const;

  const std::string& region() const { return region_; }
  const std::string& endpoint() const { return endpoint_; }

  absl::StatusOr<std::string> Get(std::string_view key) override;
  absl::StatusOr<std::string> GetRange(std::string_view key, int64_t offset,
                                       int64_t length) override;
  absl::StatusOr<int64_t> Size(std::string_view key) override;
  absl::Status Put(std::string_view key, std::string_view data) override;
  absl::Status PutFile(std::string_view key, const std::string& local_path) override;
  absl::Status GetToFile(std::string_view key, const std::string& local_path) override;
  absl::Status Delete(std::string_view key) override;
  absl::StatusOr<std::vector<std::string>> List(std::string_view prefix) override;
  // HEAD of the bucket (NotFound: "S3 bucket ... does not exist"), then a zero-byte probe
  // object PUT under `prefix` and deleted again (PermissionDenied if the PUT is refused). The
  // probe's DELETE is best effort: a store that allows writes but not deletes keeps it.
  absl::Status CheckWritable(std::string_view prefix) override;

  // The probe CheckWritable writes under the prefix.
  static constexpr std::string_view kWriteProbeName = ".caliber-write-check";

 private:
  struct Object {
    std::string bucket;
    std::string key;  // may be empty only for List
    std::string Uri() const;
  };
  // One logical request: retried as a whole.
  struct Call {
    std::string op;    // for the observer: get, head, put, delete, list
    std::string what;  // for messages: "GET s3://bucket/key"
    HttpRequest request;
    // S3 may answer CompleteMultipartUpload with 200 and an <Error> body: a failure.
    bool error_in_ok_body = false;
    // A 404 that means success (DELETE of a missing object).
    bool not_found_ok = false;
    // One try within the minimum wait, no retries: clean-up after a failure (aborting a
    // multipart upload) must not spend a second retry budget on a store that is down.
    bool single_try = false;
  };

  S3Store(const S3Options& options, StorageObserver* observer, const EnvLookup& env,
          std::string region, std::string endpoint);
  absl::StatusOr<Object> ParseKey(std::string_view key, bool need_object) const;
  // URL of `object` ("" key: the bucket) with a canonical query string.
  std::string Url(const Object& object, const std::string& query) const;
  Call NewCall(std::string op, std::string method, const Object& object,
               const std::string& query = "") const;
  // Performs `call` with retries; the response of the successful try, or a status.
  absl::StatusOr<HttpResponse> Execute(Call& call);
  absl::Status ErrorStatus(const Call& call, const HttpResponse& response,
                           const S3Credentials& credentials) const;

  int64_t PartSize(int64_t object_size) const;
  // Multipart upload of `size` bytes; `read_part(offset, length, &buffer)` fills the buffer
  // with one part, so at most one part is in memory at a time.
  absl::Status PutMultipart(
      const Object& object, int64_t size,
      const std::function<absl::Status(int64_t, int64_t, std::string*)>& read_part);

  S3Options options_;
  StorageObserver* observer_;
  std::string region_;
  std::string endpoint_;   // scheme://host[:port][/base], no trailing slash
  std::string scheme_;     // "http" or "https"
  std::string authority_;  // host[:port]
  std::string base_path_;  // "" or "/base"
  RetryOptions retry_;
  RequestTimeouts timeouts_;
  S3CredentialsProvider credentials_;
  S3HttpClient http_;
  std::atomic<uint64_t> calls_{0};  // seeds each call's jitter
};

}  // namespace caliber::storage
