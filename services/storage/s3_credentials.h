// Where S3 credentials come from, in the order of storage.h: the options, then the
// environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN), then a profile
// of the shared credentials file. The file is re-read whenever it changes, because in k8s it
// is a mounted Secret that is rotated in place. With none of these, requests go unsigned
// (anonymous), which public buckets accept.
#pragma once

#include <ctime>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "services/storage/storage.h"

namespace caliber::storage {

struct S3Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials only
  std::string source;         // for messages: "options", "environment", "<file> [profile]"

  bool anonymous() const { return access_key_id.empty(); }
};

// Reads an environment variable; tests substitute a map for the process environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnvironment();

// The [profile] section of an AWS shared credentials file (INI: "[name]" or "[profile name]"
// headers, "key = value" lines, '#' and ';' comments). NotFound if the profile is absent,
// InvalidArgument if it lacks aws_access_key_id or aws_secret_access_key.
absl::StatusOr<S3Credentials> ParseSharedCredentials(std::string_view contents,
                                                     std::string_view profile,
                                                     std::string_view file_label);

class S3CredentialsProvider {
 public:
  // The environment is read here, once.
  S3CredentialsProvider(const S3Options& options, const EnvLookup& env);

  // Credentials for the next request. Errors: InvalidArgument for half-set credentials or a
  // malformed file, NotFound for an explicitly named file or profile that does not exist.
  absl::StatusOr<S3Credentials> Get();

 private:
  absl::StatusOr<S3Credentials> fixed_;  // options or environment; unset: use the file
  bool use_file_ = false;
  std::string file_;
  bool file_explicit_ = false;  // named by the options or AWS_SHARED_CREDENTIALS_FILE
  std::string profile_;
  bool profile_explicit_ = false;  // named by AWS_PROFILE

  std::mutex mu_;
  // The file's last parse, keyed by what stat said about it.
  bool cached_ = false;
  struct timespec cached_mtime_ = {};
  int64_t cached_size_ = -1;
  uint64_t cached_inode_ = 0;
  absl::StatusOr<S3Credentials> cached_result_;
};

}  // namespace caliber::storage
