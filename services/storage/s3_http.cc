#include "services/storage/s3_http.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <new>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace caliber::storage {
namespace {

// Error bodies are XML documents of a few hundred bytes; anything longer is cut here.
constexpr size_t kMaxErrorBody = 64 << 10;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool Is2xx(long status) { return status >= 200 && status < 300; }

bool IsTransient(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

// Everything the curl callbacks of one exchange need.
struct Transfer {
  const HttpRequest* request;
  HttpResponse* response;
  CURL* curl;
  int body_fd = -1;
  int64_t body_pos = 0;
  curl_off_t last_moved = -1;
  std::chrono::steady_clock::time_point start;
  std::chrono::steady_clock::time_point last_progress;
  int64_t total_limit_ms = 0;  // the total bound last checked, for the error message
  int64_t total_bytes = 0;     // the bytes it allowed for
};

size_t ReadBody(char* buffer, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const HttpRequest& req = *t->request;
  const int64_t length =
      req.body_file.empty() ? static_cast<int64_t>(req.body.size()) : req.body_length;
  const size_t n = static_cast<size_t>(
      std::min<int64_t>(static_cast<int64_t>(size * count), length - t->body_pos));
  if (n == 0) return 0;
  if (req.body_file.empty()) {
    std::memcpy(buffer, req.body.data() + t->body_pos, n);
    t->body_pos += static_cast<int64_t>(n);
    return n;
  }
  for (;;) {
    const ssize_t got =
        ::pread(t->body_fd, buffer, n, static_cast<off_t>(req.body_file_offset + t->body_pos));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      t->response->local_error = absl::ErrnoToStatus(errno, absl::StrCat("read ", req.body_file));
      return CURL_READFUNC_ABORT;
    }
    if (got == 0) {
      t->response->local_error =
          absl::DataLossError(absl::StrCat(req.body_file, " shrank while it was being uploaded"));
      return CURL_READFUNC_ABORT;
    }
    t->body_pos += got;
    return static_cast<size_t>(got);
  }
}

// curl rewinds the body when it must send it again (e.g. after a 100-continue refusal).
int SeekBody(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
  t->body_pos = offset;
  return CURL_SEEKFUNC_OK;
}

size_t OnHeader(char* buffer, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t total = size * count;
  std::string_view line(buffer, total);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  if (line.substr(0, 5) == "HTTP/") {
    t->response->headers.clear();  // a new response (after 100 Continue): keep only the last
    return total;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return total;
  std::string name = absl::AsciiStrToLower(std::string(line.substr(0, colon)));
  std::string value(absl::StripAsciiWhitespace(std::string(line.substr(colon + 1))));
  if (name == "content-length" && t->request->sink == nullptr) {
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    const long long length = std::strtoll(value.c_str(), nullptr, 10);
    if (Is2xx(status) && length > 0) {  // a hint only: a lying server cannot make us allocate
      t->response->body.reserve(static_cast<size_t>(std::min<long long>(length, 64ll << 20)));
    }
  }
  t->response->headers[std::move(name)] = std::move(value);
  return total;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t total = size * count;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (Is2xx(status) && t->request->sink != nullptr) {
    absl::Status appended = t->request->sink->Append(std::string_view(data, total));
    if (!appended.ok()) {
      t->response->local_error = appended;
      return 0;  // curl fails the transfer with CURLE_WRITE_ERROR
    }
  } else if (Is2xx(status)) {
    try {  // no exception may unwind through curl
      t->response->body.append(data, total);
    } catch (const std::bad_alloc&) {
      t->response->local_error = absl::ResourceExhaustedError(
          absl::StrCat("out of memory after ", t->response->body.size(), " bytes of response"));
      return 0;
    }
  } else if (t->response->body.size() < kMaxErrorBody) {
    t->response->body.append(data, std::min(total, kMaxErrorBody - t->response->body.size()));
  }
  return total;
}

// Called at least about once a second, and on every chunk moved: the stall and total bounds.
int OnProgress(void* user, curl_off_t download_total, curl_off_t downloaded,
               curl_off_t upload_total, curl_off_t uploaded) {
  auto* t = static_cast<Transfer*>(user);
  const RequestTimeouts& limits = t->request->timeouts;
  const auto now = std::chrono::steady_clock::now();
  // The bytes are known for the body and, after the headers, for the response; a response of
  // unknown length (chunked) earns its allowance as it arrives.
  const curl_off_t moved = downloaded + uploaded;
  if (moved != t->last_moved) {
    t->last_moved = moved;
    t->last_progress = now;
  } else if (now - t->last_progress > std::chrono::milliseconds(limits.wait_ms)) {
    t->response->idle_timeout = true;  // checked first: a stall is the more precise diagnosis
    return 1;                          // abort
  }
  t->total_bytes = std::max(download_total, downloaded) + std::max(upload_total, uploaded);
  t->total_limit_ms = limits.TotalMs(t->total_bytes);
  if (now - t->start > std::chrono::milliseconds(t->total_limit_ms)) {
    t->response->total_timeout = true;
    return 1;  // abort
  }
  return 0;
}

}  // namespace

std::string AwsUriEncode(std::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string CanonicalQuery(std::vector<std::pair<std::string, std::string>> params) {
  for (auto& [key, value] : params) {
    key = AwsUriEncode(key, /*keep_slash=*/false);
    value = AwsUriEncode(value, /*keep_slash=*/false);
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [key, value] : params) {
    if (!out.empty()) out.push_back('&');
    absl::StrAppend(&out, key, "=", value);
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xF]);
  }
  return out;
}

// DNS answers and TLS sessions outlive one handle; the share's locks make that thread-safe.
struct S3HttpClient::Share {
  CURLSH* handle = nullptr;
  std::mutex locks[CURL_LOCK_DATA_LAST];

  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<Share*>(user)->locks[data].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<Share*>(user)->locks[data].unlock();
  }
};

S3HttpClient::S3HttpClient(std::string region)
    : region_(std::move(region)), share_(std::make_unique<Share>()) {
  GlobalInitOnce();
  share_->handle = curl_share_init();
  if (share_->handle != nullptr) {
    curl_share_setopt(share_->handle, CURLSHOPT_LOCKFUNC, &Share::Lock);
    curl_share_setopt(share_->handle, CURLSHOPT_UNLOCKFUNC, &Share::Unlock);
    curl_share_setopt(share_->handle, CURLSHOPT_USERDATA, share_.get());
    curl_share_setopt(share_->handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share_->handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
}

S3HttpClient::~S3HttpClient() {
  if (share_->handle != nullptr) curl_share_cleanup(share_->handle);
}

HttpResponse S3HttpClient::Perform(const HttpRequest& request,
                                   const S3Credentials& credentials) const {
  HttpResponse response;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    response.local_error = absl::ResourceExhaustedError("curl_easy_init failed");
    return response;
  }
  Transfer t{&request, &response, curl};
  t.start = std::chrono::steady_clock::now();
  t.last_progress = t.start;
  const bool has_body = request.method == "PUT" || request.method == "POST";
  if (has_body && !request.body_file.empty()) {
    t.body_fd = ::open(request.body_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (t.body_fd < 0) {
      response.local_error = absl::ErrnoToStatus(errno, absl::StrCat("open ", request.body_file));
      curl_easy_cleanup(curl);
      return response;
    }
  }

  curl_slist* headers = nullptr;
  for (const std::string& header : request.headers)
    headers = curl_slist_append(headers, header.c_str());
  headers = curl_slist_append(
      headers, absl::StrCat("x-amz-content-sha256: ", request.payload_sha256).c_str());
  if (!credentials.session_token.empty()) {
    headers = curl_slist_append(
        headers, absl::StrCat("x-amz-security-token: ", credentials.session_token).c_str());
  }

  char error_buffer[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "caliber-storage/1");
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(request.timeouts.connect_ms));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &OnProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  if (share_->handle != nullptr) curl_easy_setopt(curl, CURLOPT_SHARE, share_->handle);

  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (has_body) {
    // UPLOAD sends Content-Length (0 included) and no default Content-Type; the method name
    // is then whatever we say.
    const int64_t length =
        request.body_file.empty() ? static_cast<int64_t>(request.body.size()) : request.body_length;
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(length));
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, &ReadBody);
    curl_easy_setopt(curl, CURLOPT_READDATA, &t);
    curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, &SeekBody);
    curl_easy_setopt(curl, CURLOPT_SEEKDATA, &t);
    if (request.method != "PUT")
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  std::string sigv4;
  if (!credentials.anonymous()) {
    sigv4 = absl::StrCat("aws:amz:", region_, ":s3");
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(curl, CURLOPT_USERNAME, credentials.access_key_id.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, credentials.secret_access_key.c_str());
  }

  const CURLcode code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  curl_off_t sent = 0;
  curl_off_t received = 0;
  curl_easy_getinfo(curl, CURLINFO_SIZE_UPLOAD_T, &sent);
  curl_easy_getinfo(curl, CURLINFO_SIZE_DOWNLOAD_T, &received);
  response.bytes_sent = sent;
  response.bytes_received = received;
  if (code != CURLE_OK) {
    response.curl_code = code;
    response.transport_error =
        error_buffer[0] != '\0' ? std::string(error_buffer) : std::string(curl_easy_strerror(code));
    response.transient = IsTransient(code) && response.local_error.ok();
    if (response.idle_timeout) {
      response.transient = true;
      response.transport_error = absl::StrCat("no data moved for ", request.timeouts.wait_ms, " ms");
    } else if (response.total_timeout) {
      response.transient = true;
      response.transport_error = absl::StrCat(
          "request took longer than its limit of ", t.total_limit_ms, " ms (",
          request.timeouts.wait_ms, " ms plus ", t.total_bytes, " bytes at ",
          request.timeouts.min_bytes_per_second, " bytes/s)");
    }
  }

  curl_easy_cleanup(curl);
  curl_slist_free_all(headers);
  if (t.body_fd >= 0) ::close(t.body_fd);
  return response;
}

}  // namespace caliber::storage
