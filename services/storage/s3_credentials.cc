#include "services/storage/s3_credentials.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace caliber::storage {
namespace {

std::string Trim(std::string_view s) {
  return std::string(absl::StripAsciiWhitespace(absl::string_view(s.data(), s.size())));
}

std::optional<std::string> NonEmpty(const EnvLookup& env, const char* name) {
  std::optional<std::string> value = env(name);
  if (value.has_value() && value->empty()) return std::nullopt;
  return value;
}

}  // namespace

EnvLookup ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

absl::StatusOr<S3Credentials> ParseSharedCredentials(std::string_view contents,
                                                     std::string_view profile,
                                                     std::string_view file_label) {
  const std::string label = absl::StrCat(std::string(file_label), " [", std::string(profile), "]");
  bool found = false;
  bool in_profile = false;
  S3Credentials creds;
  creds.source = label;
  std::istringstream lines{std::string(contents)};
  std::string raw;
  int line_number = 0;
  while (std::getline(lines, raw)) {
    ++line_number;
    const std::string line = Trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']') {
        return absl::InvalidArgumentError(
            absl::StrCat(std::string(file_label), ":", line_number, ": malformed section header"));
      }
      std::string name = Trim(std::string_view(line).substr(1, line.size() - 2));
      if (name.rfind("profile ", 0) == 0) name = Trim(std::string_view(name).substr(8));
      in_profile = name == profile;
      found = found || in_profile;
      continue;
    }
    if (!in_profile) continue;
    const size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(file_label), ":", line_number, ": expected key = value"));
    }
    const std::string key = absl::AsciiStrToLower(Trim(std::string_view(line).substr(0, eq)));
    const std::string value = Trim(std::string_view(line).substr(eq + 1));
    if (key == "aws_access_key_id") {
      creds.access_key_id = value;
    } else if (key == "aws_secret_access_key") {
      creds.secret_access_key = value;
    } else if (key == "aws_session_token" || key == "aws_security_token") {
      creds.session_token = value;
    }
  }
  if (!found) return absl::NotFoundError(absl::StrCat(label, ": no such profile"));
  if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": needs both aws_access_key_id and aws_secret_access_key"));
  }
  return creds;
}

S3CredentialsProvider::S3CredentialsProvider(const S3Options& options, const EnvLookup& env)
    : fixed_(absl::UnknownError("unset")) {
  if (!options.access_key_id.empty() || !options.secret_access_key.empty()) {
    if (options.access_key_id.empty() || options.secret_access_key.empty()) {
      fixed_ = absl::InvalidArgumentError(
          "S3 options set only one of access_key_id and secret_access_key");
    } else {
      fixed_ = S3Credentials{options.access_key_id, options.secret_access_key,
                             options.session_token, "options"};
    }
    return;
  }
  std::optional<std::string> id = NonEmpty(env, "AWS_ACCESS_KEY_ID");
  std::optional<std::string> secret = NonEmpty(env, "AWS_SECRET_ACCESS_KEY");
  if (id.has_value() || secret.has_value()) {
    if (!id.has_value() || !secret.has_value()) {
      fixed_ = absl::InvalidArgumentError(
          "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set");
    } else {
      fixed_ = S3Credentials{*id, *secret, NonEmpty(env, "AWS_SESSION_TOKEN").value_or(""),
                             "environment"};
    }
    return;
  }
  use_file_ = true;
  if (!options.credentials_file.empty()) {
    file_ = options.credentials_file;
    file_explicit_ = true;
  } else if (std::optional<std::string> path = NonEmpty(env, "AWS_SHARED_CREDENTIALS_FILE")) {
    file_ = *path;
    file_explicit_ = true;
  } else if (std::optional<std::string> home = NonEmpty(env, "HOME")) {
    file_ = absl::StrCat(*home, "/.aws/credentials");
  }
  if (std::optional<std::string> profile = NonEmpty(env, "AWS_PROFILE")) {
    profile_ = *profile;
    profile_explicit_ = true;
  } else {
    profile_ = "default";
  }
}

absl::StatusOr<S3Credentials> S3CredentialsProvider::Get() {
  if (!use_file_) return fixed_;
  const S3Credentials anonymous{"", "", "", "none (anonymous requests)"};
  if (file_.empty()) return anonymous;

  std::lock_guard<std::mutex> lock(mu_);
  struct stat st;
  if (::stat(file_.c_str(), &st) != 0) {
    const int error = errno;
    cached_ = false;
    if (error == ENOENT && !file_explicit_ && !profile_explicit_) return anonymous;
    return absl::ErrnoToStatus(error, absl::StrCat("S3 credentials file ", file_));
  }
  if (cached_ && st.st_mtim.tv_sec == cached_mtime_.tv_sec &&
      st.st_mtim.tv_nsec == cached_mtime_.tv_nsec && st.st_size == cached_size_ &&
      st.st_ino == cached_inode_) {
    return cached_result_;
  }
  std::ifstream in(file_, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  if (!in) {
    return absl::PermissionDeniedError(absl::StrCat("cannot read S3 credentials file ", file_));
  }
  absl::StatusOr<S3Credentials> parsed = ParseSharedCredentials(contents.str(), profile_, file_);
  if (absl::IsNotFound(parsed.status()) && !profile_explicit_) parsed = anonymous;
  cached_ = true;
  cached_mtime_ = st.st_mtim;
  cached_size_ = st.st_size;
  cached_inode_ = st.st_ino;
  cached_result_ = parsed;
  return parsed;
}

}  // namespace caliber::storage
