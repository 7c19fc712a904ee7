#include "services/storage/s3_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/storage/atomic_file.h"
#include "services/storage/s3_xml.h"

namespace caliber::storage {
namespace {

constexpr std::string_view kDefaultRegion = "us-east-1";
constexpr int64_t kMaxKeyBytes = 1024;  // S3's limit on object key length
// Fixed so that the jitter of a sequence of calls is the same on every run.
constexpr uint64_t kJitterSeed = 0x63616c6962657231ull;

std::string Quoted(std::string_view s) { return absl::StrCat("\"", std::string(s), "\""); }

std::optional<std::string> NonEmpty(const EnvLookup& env, const char* name) {
  std::optional<std::string> value = env(name);
  if (value.has_value() && value->empty()) return std::nullopt;
  return value;
}

bool ValidBucket(std::string_view bucket) {
  if (bucket.empty() || bucket.size() > 255) return false;
  return std::all_of(bucket.begin(), bucket.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
  });
}

// "HTTP 403 AccessDenied: Access Denied" or "curl error 7: Failed to connect ...".
std::string Describe(const HttpResponse& r) {
  if (r.curl_code != 0 && (r.status == 0 || r.idle_timeout || r.total_timeout)) {
    return absl::StrCat("curl error ", r.curl_code, ": ", r.transport_error);
  }
  std::string out = absl::StrCat("HTTP ", r.status);
  if (std::optional<S3ErrorBody> error = ParseS3Error(r.body)) {
    absl::StrAppend(&out, " ", error->code);
    if (!error->message.empty()) absl::StrAppend(&out, ": ", error->message);
  } else if (r.status == 404) {
    absl::StrAppend(&out, " (no such object)");
  }
  if (r.curl_code != 0)
    absl::StrAppend(&out, " (then curl error ", r.curl_code, ": ", r.transport_error, ")");
  return out;
}

bool Retriable(const HttpResponse& r) {
  if (r.curl_code != 0) return r.transient;
  if (r.status >= 500 || r.status == 429) return true;
  // S3 reports these with 400 (RequestTimeout: the body came too slowly) or inside a 200
  // (CompleteMultipartUpload); AWS's SDKs retry them.
  if (std::optional<S3ErrorBody> error = ParseS3Error(r.body)) {
    return error->code == "RequestTimeout" || error->code == "InternalError" ||
           error->code == "SlowDown" || error->code == "ServiceUnavailable";
  }
  return false;
}

absl::Status Annotate(const absl::Status& status, std::string_view what) {
  return absl::Status(status.code(), absl::StrCat(std::string(what), ": ", status.message()));
}

}  // namespace

std::string S3Store::Object::Uri() const {
  return key.empty() ? absl::StrCat("s3://", bucket) : absl::StrCat("s3://", bucket, "/", key);
}

absl::StatusOr<std::unique_ptr<S3Store>> S3Store::Create(const S3Options& options,
                                                         StorageObserver* observer,
                                                         const EnvLookup& env) {
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("S3 max_attempts must be at least 1, not ", options.max_attempts));
  }
  if (options.initial_backoff_ms < 0 || options.max_backoff_ms < 0 || options.retry_budget_ms < 0 ||
      options.request_timeout_ms <= 0 || options.connect_timeout_ms <= 0 ||
      options.min_throughput_bytes_per_s <= 0) {
    return absl::InvalidArgumentError(
        "S3 backoffs and retry budget must be >= 0, and request_timeout_ms, connect_timeout_ms "
        "and min_throughput_bytes_per_s > 0");
  }
  if (options.multipart_part_size < kMinPartSize || options.multipart_part_size > kMaxPartSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("S3 multipart_part_size ", options.multipart_part_size,
                     " is outside S3's limits [", kMinPartSize, ", ", kMaxPartSize, "]"));
  }
  if (options.multipart_threshold < 0) {
    return absl::InvalidArgumentError("S3 multipart_threshold must be >= 0");
  }

  std::string region = options.region;
  if (region.empty() || region == kDefaultRegion) {
    region =
        NonEmpty(env, "AWS_REGION")
            .value_or(NonEmpty(env, "AWS_DEFAULT_REGION").value_or(std::string(kDefaultRegion)));
  }
  if (!std::all_of(region.begin(), region.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-';
      })) {
    return absl::InvalidArgumentError(absl::StrCat("S3 region ", Quoted(region), " is invalid"));
  }
  std::string endpoint = options.endpoint;
  if (endpoint.empty()) endpoint = NonEmpty(env, "AWS_ENDPOINT_URL_S3").value_or("");
  if (endpoint.empty()) endpoint = NonEmpty(env, "AWS_ENDPOINT_URL").value_or("");
  if (endpoint.empty()) endpoint = absl::StrCat("https://s3.", region, ".amazonaws.com");
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();

  std::unique_ptr<S3Store> store(new S3Store(options, observer, env, region, endpoint));
  const size_t sep = endpoint.find("://");
  if (sep != std::string::npos) store->scheme_ = absl::AsciiStrToLower(endpoint.substr(0, sep));
  if (sep == std::string::npos || (store->scheme_ != "http" && store->scheme_ != "https")) {
    return absl::InvalidArgumentError(
        absl::StrCat("S3 endpoint ", Quoted(endpoint), " must start with http:// or https://"));
  }
  const std::string rest = endpoint.substr(sep + 3);
  const size_t slash = rest.find('/');
  store->authority_ = rest.substr(0, slash);
  store->base_path_ = slash == std::string::npos ? "" : rest.substr(slash);
  if (store->authority_.empty() || store->authority_.find_first_of("@?#") != std::string::npos ||
      store->base_path_.find_first_of("?#") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("S3 endpoint ", Quoted(endpoint), " is not http(s)://host[:port][/path]"));
  }
  return store;
}

S3Store::S3Store(const S3Options& options, StorageObserver* observer, const EnvLookup& env,
                 std::string region, std::string endpoint)
    : options_(options),
      observer_(observer),
      region_(std::move(region)),
      endpoint_(std::move(endpoint)),
      retry_{options.max_attempts, options.initial_backoff_ms, options.max_backoff_ms,
             options.retry_budget_ms},
      timeouts_{options.connect_timeout_ms, options.request_timeout_ms,
                options.min_throughput_bytes_per_s},
      credentials_(options, env),
      http_(region_) {}

S3Store::~S3Store() = default;

absl::StatusOr<S3Store::Object> S3Store::ParseKey(std::string_view key, bool need_object) const {
  if (key.empty()) return absl::InvalidArgumentError("empty S3 key (expected bucket/key)");
  const size_t slash = key.find('/');
  Object object;
  object.bucket = std::string(key.substr(0, slash));
  if (slash != std::string_view::npos) object.key = std::string(key.substr(slash + 1));
  if (!ValidBucket(object.bucket)) {
    return absl::InvalidArgumentError(
        absl::StrCat("S3 key ", Quoted(key), ": invalid bucket name ", Quoted(object.bucket)));
  }
  if (need_object && object.key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("S3 key ", Quoted(key), " names a bucket, not an object"));
  }
  if (static_cast<int64_t>(object.key.size()) > kMaxKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("S3 key ", Quoted(key), " is longer than ", kMaxKeyBytes, " bytes"));
  }
  return object;
}

absl::Status S3Store::CheckKey(std::string_view key) const {
  return ParseKey(key, /*need_object=*/false).status();
}

std::string S3Store::Url(const Object& object, const std::string& query) const {
  std::string url;
  if (options_.path_style) {
    url = absl::StrCat(scheme_, "://", authority_, base_path_, "/", object.bucket);
    if (!object.key.empty()) absl::StrAppend(&url, "/", AwsUriEncode(object.key, true));
  } else {
    url = absl::StrCat(scheme_, "://", object.bucket, ".", authority_, base_path_, "/",
                       AwsUriEncode(object.key, true));
  }
  if (!query.empty()) absl::StrAppend(&url, "?", query);
  return url;
}

S3Store::Call S3Store::NewCall(std::string op, std::string method, const Object& object,
                               const std::string& query) const {
  Call call;
  call.op = std::move(op);
  call.what = absl::StrCat(method, " ", object.Uri());
  call.request.method = std::move(method);
  call.request.url = Url(object, query);
  call.request.timeouts = timeouts_;
  return call;
}

absl::StatusOr<HttpResponse> S3Store::Execute(Call& call) {
  absl::StatusOr<S3Credentials> credentials = credentials_.Get();
  if (!credentials.ok()) {
    return Annotate(credentials.status(), absl::StrCat(call.what, ": S3 credentials"));
  }
  RetryOptions retry = retry_;
  if (call.single_try) {
    retry.max_attempts = 1;
    retry.retry_budget_ms = 0;
  }
  RetryBudget budget(retry, kJitterSeed + calls_.fetch_add(1, std::memory_order_relaxed));
  for (;;) {
    // Each try gets at most what is left of the budget (never less than the minimum wait), so
    // a hung store cannot hold one try past it.
    call.request.timeouts = timeouts_.Within(budget.left());
    if (call.request.sink != nullptr) {
      absl::Status reset = call.request.sink->Reset();
      if (!reset.ok()) return Annotate(reset, call.what);
    }
    HttpResponse response = http_.Perform(call.request, *credentials);
    bool failed = !response.ok();
    if (!failed && call.error_in_ok_body && ParseS3Error(response.body).has_value()) {
      failed = true;
    }
    if (failed && call.not_found_ok && response.status == 404 && response.curl_code == 0) {
      failed = false;
    }
    if (observer_ != nullptr) {
      observer_->OnRequest("s3", call.op, response.bytes_sent + response.bytes_received, failed);
    }
    if (!failed) return response;
    if (!response.local_error.ok()) return Annotate(response.local_error, call.what);
    if (!Retriable(response)) return ErrorStatus(call, response, *credentials);
    std::optional<std::chrono::milliseconds> delay = budget.NextDelay();
    if (!delay.has_value()) {
      return absl::UnavailableError(absl::StrCat(
          call.what, ": giving up after ", budget.attempts(), " attempt(s) in ",
          budget.elapsed().count(), " ms (max_attempts ", retry.max_attempts, ", retry_budget_ms ",
          retry.retry_budget_ms, "); last error: ", Describe(response)));
    }
    std::this_thread::sleep_for(*delay);
  }
}

absl::Status S3Store::ErrorStatus(const Call& call, const HttpResponse& response,
                                  const S3Credentials& credentials) const {
  std::string message = absl::StrCat(call.what, ": ", Describe(response));
  if (response.curl_code != 0 && response.status == 0) return absl::UnavailableError(message);
  const long status = response.status;
  if (status == 401 || status == 403) {
    absl::StrAppend(&message, credentials.anonymous()
                                  ? " (no S3 credentials are configured: the request was anonymous)"
                                  : absl::StrCat(" (credentials from ", credentials.source, ")"));
    return absl::PermissionDeniedError(message);
  }
  if (status == 404) return absl::NotFoundError(message);
  if (status == 400) return absl::InvalidArgumentError(message);
  if (status == 416) return absl::OutOfRangeError(message);
  // 301/307 (the bucket lives in another region), 409 (conflicts), 412 (preconditions).
  if ((status >= 300 && status < 400) || status == 409 || status == 412) {
    return absl::FailedPreconditionError(message);
  }
  return absl::UnknownError(message);
}

absl::StatusOr<std::string> S3Store::Get(std::string_view key) {
  absl::StatusOr<Object> object = ParseKey(key, /*need_object=*/true);
  if (!object.ok()) return object.status();
  Call call = NewCall("get", "GET", *object);
  absl::StatusOr<HttpResponse> response = Execute(call);
  if (!response.ok()) return response.status();
  return std::move(response->body);
}

absl::StatusOr<std::string> S3Store::GetRange(std::string_view key, int64_t offset,
                                              int64_t length) {
  absl::StatusOr<Object> object = ParseKey(key, /*need_object=*/true);
  if (!object.ok()) return object.status();
  if (offset < 0 || length < 0 || offset > std::numeric_limits<int64_t>::max() - length) {
    return absl::InvalidArgumentError(absl::StrCat("invalid range (offset ", offset, ", length ",
                                                   length, ") for ", object->Uri()));
  }
  const std::string range = absl::StrCat("[", offset, ", ", offset + length, ")");
  auto out_of_range = [&](int64_t size) {
    return absl::OutOfRangeError(absl::StrCat("GET ", object->Uri(), ": range ", range,
                                              " passes the end of the object (", size, " bytes)"));
  };
  if (length == 0) {  // an empty HTTP range does not exist; check the bound with HEAD
    absl::StatusOr<int64_t> size = Size(key);
    if (!size.ok()) return size.status();
    if (offset > *size) return out_of_range(*size);
    return std::string();
  }
  Call call = NewCall("get", "GET", *object);
  call.what = absl::StrCat(call.what, " bytes ", range);
  call.request.headers.push_back(absl::StrCat("Range: bytes=", offset, "-", offset + length - 1));
  absl::StatusOr<HttpResponse> response = Execute(call);
  if (!response.ok()) return response.status();
  if (response->status == 200) {  // the server ignored Range and sent the whole object
    const int64_t size = static_cast<int64_t>(response->body.size());
    if (offset + length > size) return out_of_range(size);
    return response->body.substr(static_cast<size_t>(offset), static_cast<size_t>(length));
  }
  if (static_cast<int64_t>(response->body.size()) != length) {
    // 206 with fewer bytes: the range was cut at the end. Content-Range: bytes a-b/size.
    int64_t size = -1;
    const std::string content_range = response->Header("content-range");
    const size_t slash = content_range.rfind('/');
    if (slash == std::string::npos || !absl::SimpleAtoi(content_range.substr(slash + 1), &size)) {
      size = offset + static_cast<int64_t>(response->body.size());
    }
    return out_of_range(size);
  }
  return std::move(response->body);
}

absl::StatusOr<int64_t> S3Store::Size(std::string_view key) {
  absl::StatusOr<Object> object = ParseKey(key, /*need_object=*/true);
  if (!object.ok()) return object.status();
  Call call = NewCall("head", "HEAD", *object);
  absl::StatusOr<HttpResponse> response = Execute(call);
  if (!response.ok()) return response.status();
  int64_t size = 0;
  if (!absl::SimpleAtoi(response->Header("content-length"), &size) || size < 0) {
    return absl::UnknownError(absl::StrCat(call.what, ": response has no valid Content-Length"));
  }
  return size;
}

int64_t S3Store::PartSize(int64_t object_size) const {
  const int64_t needed = (object_size + kMaxParts - 1) / kMaxParts;
  return std::max(options_.multipart_part_size, needed);
}

absl::Status S3Store::PutMultipart(
    const Object& object, int64_t size,
    const std::function<absl::Status(int64_t, int64_t, std::string*)>& read_part) {
  const int64_t part_size = PartSize(size);
  if (part_size > kMaxPartSize) {
    return absl::InvalidArgumentError(absl::StrCat("PUT ", object.Uri(), ": ", size,
                                                   " bytes is more than S3 accepts in one object"));
  }
  Call create = NewCall("put", "POST", object, CanonicalQuery({{"uploads", ""}}));
  create.what = absl::StrCat(create.what, " (create multipart upload)");
  create.request.headers.push_back("Content-Type: application/octet-stream");
  absl::StatusOr<HttpResponse> created = Execute(create);
  if (!created.ok()) return created.status();
  const std::string upload_id = XmlFirstText(created->body, "UploadId").value_or("");
  if (upload_id.empty()) {
    return absl::UnknownError(absl::StrCat(create.what, ": response has no UploadId"));
  }

  auto abort_upload = [&](absl::Status cause) {
    // Best effort: parts of an upload that is neither completed nor aborted are billed
    // until a lifecycle rule removes them.
    Call abort = NewCall("put", "DELETE", object, CanonicalQuery({{"uploadId", upload_id}}));
    abort.not_found_ok = true;
    abort.single_try = true;
    (void)Execute(abort);
    return cause;
  };

  const int64_t parts = (size + part_size - 1) / part_size;
  std::vector<CompletedPart> completed;
  std::string buffer;
  for (int64_t i = 0; i < parts; ++i) {
    const int64_t offset = i * part_size;
    const int64_t length = std::min(part_size, size - offset);
    absl::Status read = read_part(offset, length, &buffer);
    if (!read.ok()) return abort_upload(Annotate(read, absl::StrCat("PUT ", object.Uri())));
    const int part_number = static_cast<int>(i + 1);
    Call upload = NewCall(
        "put", "PUT", object,
        CanonicalQuery({{"partNumber", std::to_string(part_number)}, {"uploadId", upload_id}}));
    upload.what = absl::StrCat(upload.what, " (part ", part_number, " of ", parts, ")");
    upload.request.body = buffer;
    upload.request.payload_sha256 = Sha256Hex(buffer);
    absl::StatusOr<HttpResponse> uploaded = Execute(upload);
    if (!uploaded.ok()) return abort_upload(uploaded.status());
    std::string etag = uploaded->Header("etag");
    if (etag.empty()) {
      return abort_upload(absl::UnknownError(absl::StrCat(upload.what, ": response has no ETag")));
    }
    completed.push_back({part_number, std::move(etag)});
  }

  const std::string xml = CompleteMultipartUploadXml(completed);
  Call complete = NewCall("put", "POST", object, CanonicalQuery({{"uploadId", upload_id}}));
  complete.what = absl::StrCat(complete.what, " (complete multipart upload)");
  complete.request.headers.push_back("Content-Type: application/xml");
  complete.request.body = xml;
  complete.request.payload_sha256 = Sha256Hex(xml);
  complete.error_in_ok_body = true;
  absl::StatusOr<HttpResponse> done = Execute(complete);
  if (!done.ok()) return abort_upload(done.status());
  return absl::OkStatus();
}

absl::Status S3Store::Put(std::string_view key, std::string_view data) {
  absl::StatusOr<Object> object = ParseKey(key, /*need_object=*/true);
  if (!object.ok()) return object.status();
  const int64_t size = static_cast<int64_t>(data.size());
  if (size > options_.multipart_threshold) {
    return PutMultipart(*object, size, [data](int64_t offset, int64_t length, std::string* out) {
      out->assign(data.substr(static_cast<size_t>(offset), static_cast<size_t>(length)));
      return absl::OkStatus();
    });
  }
  Call call = NewCall("put", "PUT", *object);
  call.request.body = data;
  call.request.payload_sha256 = Sha256Hex(data);
  return Execute(call).status();
}

absl::Status S3Store::PutFile(std::string_view key, const std::string& local_path) {
  absl::StatusOr<Object> object = ParseKey(key, /*need_object=*/true);
  if (!object.ok()) return object.status();
  const std::string what = absl::StrCat("PUT ", object->Uri(), " from ", local_path);
  struct stat st;
  if (::stat(local_path.c_str(), &st) != 0) return absl::ErrnoToStatus(errno, what);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not a regular file"));
  }
  const int64_t size = st.st_size;
  if (size > options_.multipart_threshold) {
    return PutMultipart(*object, size, [&](int64_t offset, int64_t length, std::string* out) {
      std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(local_path.c_str(), "rb"),
                                                 &std::fclose);
      if (file == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("open ", local_path));
      out->resize(static_cast<size_t>(length));
      if (::fseeko(file.get(), static_cast<off_t>(offset), SEEK_SET) != 0 ||
          std::fread(out->data(), 1, out->size(), file.get()) != out->size()) {
        return absl::DataLossError(absl::StrCat("read ", length, " bytes at ", offset, " of ",
                                                local_path, " (did it shrink?)"));
      }
      return absl::OkStatus();
    });
  }
  // Streamed from disk as it is sent, so its hash is not known up front.
  Call call = NewCall("put", "PUT", *object);
  call.request.body_file = local_path;
  call.request.body_length = size;
  call.request.payload_sha256 = std::string(kUnsignedPayload);
  return Execute(call).status();
}

absl::Status S3Store::GetToFile(std::string_view key, const std::string& local_path) {
  absl::StatusOr<Object> object = ParseKey(key, /*need_object=*/true);
  if (!object.ok()) return object.status();
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> writer = AtomicFileWriter::Create(local_path);
  if (!writer.ok()) {
    return Annotate(writer.status(), absl::StrCat("GET ", object->Uri(), " to ", local_path));
  }
  Call call = NewCall("get", "GET", *object);
  call.request.sink = writer->get();
  absl::StatusOr<HttpResponse> response = Execute(call);
  if (!response.ok()) return response.status();
  int64_t expected = 0;
  if (absl::SimpleAtoi(response->Header("content-length"), &expected) &&
      expected != (*writer)->bytes_written()) {
    return absl::DataLossError(absl::StrCat(call.what, ": received ", (*writer)->bytes_written(),
                                            " of ", expected, " bytes"));
  }
  absl::Status committed = (*writer)->Commit();
  if (!committed.ok()) return Annotate(committed, call.what);
  return absl::OkStatus();
}

absl::Status S3Store::Delete(std::string_view key) {
  absl::StatusOr<Object> object = ParseKey(key, /*need_object=*/true);
  if (!object.ok()) return object.status();
  Call call = NewCall("delete", "DELETE", *object);
  call.not_found_ok = true;
  return Execute(call).status();
}

absl::Status S3Store::CheckWritable(std::string_view prefix) {
  absl::StatusOr<Object> object = ParseKey(prefix, /*need_object=*/false);
  if (!object.ok()) return object.status();
  Call head = NewCall("head", "HEAD", Object{object->bucket, ""});
  absl::StatusOr<HttpResponse> found = Execute(head);
  if (absl::IsNotFound(found.status())) {
    return absl::NotFoundError(absl::StrCat("S3 bucket ", Quoted(object->bucket),
                                            " does not exist (at ", endpoint_, ")"));
  }
  if (!found.ok()) return found.status();

  // Credentials that may read the bucket may still not write to it: try.
  std::string key = object->key;
  while (!key.empty() && key.back() == '/') key.pop_back();
  key = key.empty() ? std::string(kWriteProbeName) : absl::StrCat(key, "/", std::string(kWriteProbeName));
  absl::StatusOr<Object> probe = ParseKey(absl::StrCat(object->bucket, "/", key), true);
  if (!probe.ok()) return probe.status();
  Call put = NewCall("put", "PUT", *probe);
  put.what = absl::StrCat(put.what, " (write check)");
  absl::StatusOr<HttpResponse> written = Execute(put);
  if (absl::IsPermissionDenied(written.status())) {
    return absl::PermissionDeniedError(absl::StrCat("may not write under ", object->Uri(), ": ",
                                                    written.status().message()));
  }
  if (!written.ok()) return written.status();
  Call remove = NewCall("delete", "DELETE", *probe);
  remove.not_found_ok = true;
  (void)Execute(remove);  // best effort: see the header
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> S3Store::List(std::string_view prefix) {
  absl::StatusOr<Object> object = ParseKey(prefix, /*need_object=*/false);
  if (!object.ok()) return object.status();
  const Object bucket{object->bucket, ""};
  std::vector<std::string> keys;
  std::string token;
  for (int page = 1;; ++page) {
    std::vector<std::pair<std::string, std::string>> params = {{"list-type", "2"}};
    if (!object->key.empty()) params.emplace_back("prefix", object->key);
    if (!token.empty()) params.emplace_back("continuation-token", token);
    Call call = NewCall("list", "GET", bucket, CanonicalQuery(std::move(params)));
    call.what = absl::StrCat("LIST ", object->Uri(), " (page ", page, ")");
    absl::StatusOr<HttpResponse> response = Execute(call);
    if (!response.ok()) return response.status();
    absl::StatusOr<ListObjectsPage> parsed = ParseListObjectsV2(response->body);
    if (!parsed.ok()) {
      return absl::UnknownError(absl::StrCat(call.what, ": ", parsed.status().message()));
    }
    for (std::string& key : parsed->keys) {
      keys.push_back(absl::StrCat(object->bucket, "/", key));
    }
    if (!parsed->truncated) break;
    if (parsed->next_continuation_token == token) {
      return absl::UnknownError(
          absl::StrCat(call.what, ": the server repeated its continuation token"));
    }
    token = std::move(parsed->next_continuation_token);
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

}  // namespace caliber::storage
