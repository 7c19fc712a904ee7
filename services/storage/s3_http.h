// One HTTP exchange with an S3 endpoint over libcurl, signed with AWS Signature V4 by curl
// (CURLOPT_AWS_SIGV4). Every exchange gets its own easy handle, so any number of threads may
// call Perform at once; DNS and TLS sessions are shared between handles.
//
// What curl 7.88 leaves to the caller, and this layer therefore does:
//  - x-amz-content-sha256: curl signs the headers it is given but does not add this one,
//    which S3 requires; it is set from HttpRequest::payload_sha256 (the hex SHA-256 of the
//    body, or UNSIGNED-PAYLOAD for a body streamed from disk).
//  - the canonical query string: curl signs the query exactly as written, so callers pass it
//    already canonical (see CanonicalQuery).
//  - the canonical URI: curl signs the path as written; callers encode keys with
//    AwsUriEncode, and dot segments are sent as they are (CURLOPT_PATH_AS_IS).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "services/storage/atomic_file.h"
#include "services/storage/request_timeouts.h"
#include "services/storage/s3_credentials.h"

namespace caliber::storage {

// SigV4's URI encoding: every byte but A-Z a-z 0-9 - _ . ~ becomes %XX (upper-case hex); '/'
// is kept as is when `keep_slash` (object key paths) and encoded otherwise (query values).
std::string AwsUriEncode(std::string_view text, bool keep_slash);

// "k1=v1&k2=v2" from unencoded pairs: encoded, sorted by encoded key (then value), and with
// "k=" for empty values, which is the form SigV4 signs.
std::string CanonicalQuery(std::vector<std::pair<std::string, std::string>> params);

// SHA-256 of `data`, lower-case hex.
std::string Sha256Hex(std::string_view data);
// The SHA-256 of an empty payload (GET, HEAD, DELETE).
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

struct HttpRequest {
  std::string method = "GET";        // GET, HEAD, PUT, POST, DELETE
  std::string url;                   // path and query already encoded and canonical
  std::vector<std::string> headers;  // "Name: value", signed along with host and x-amz-*
  std::string payload_sha256 = std::string(kEmptySha256);

  // The body, if any: bytes in memory, or a byte range of a local file read as it is sent
  // (body_file non-empty).
  std::string_view body;
  std::string body_file;
  int64_t body_file_offset = 0;
  int64_t body_length = 0;  // for body_file

  // A successful (2xx) response body goes here if set, else into HttpResponse::body. Error
  // bodies always go to HttpResponse::body.
  AtomicFileWriter* sink = nullptr;

  // Connect, stall (no byte moving either way) and total bounds; see request_timeouts.h. The
  // total counts the body's length and, once the response announces it, the response's.
  RequestTimeouts timeouts;
};

struct HttpResponse {
  long status = 0;              // 0: no HTTP response (see transport_error)
  int curl_code = 0;            // CURLcode of the transfer
  std::string transport_error;  // curl's description when curl_code != 0
  bool idle_timeout = false;    // aborted: nothing moved for timeouts.wait_ms
  bool total_timeout = false;   // aborted: the exchange outlasted its total bound
  // The transport failed in a way a new try may not (refused or reset connection, DNS,
  // timeout, truncated response); false for errors like a malformed URL or a TLS
  // certificate that does not verify.
  bool transient = false;
  // A failure on this side (reading the body file, writing the sink): not worth retrying.
  absl::Status local_error;
  std::map<std::string, std::string> headers;  // names lower-cased; the final response's
  std::string body;
  int64_t bytes_sent = 0;
  int64_t bytes_received = 0;

  bool ok() const { return status >= 200 && status < 300 && curl_code == 0 && local_error.ok(); }
  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class S3HttpClient {
 public:
  explicit S3HttpClient(std::string region);
  ~S3HttpClient();
  S3HttpClient(const S3HttpClient&) = delete;
  S3HttpClient& operator=(const S3HttpClient&) = delete;

  // Performs `request` once; signs it unless `credentials` are anonymous. Never throws; all
  // outcomes are described by the response.
  HttpResponse Perform(const HttpRequest& request, const S3Credentials& credentials) const;

 private:
  struct Share;  // a CURLSH with its locks
  std::string region_;
  std::unique_ptr<Share> share_;
};

}  // namespace caliber::storage
