#include "services/auth/secret_file_mode.h"

#include <sys/stat.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace caliber::auth {

absl::Status CheckSecretFileMode(absl::string_view program, absl::string_view flag, const std::string& path,
                                 bool allow_insecure) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return absl::OkStatus();
  const unsigned mode = st.st_mode & 07777;
  if ((mode & 077) == 0) return absl::OkStatus();
  const std::string problem = absl::StrFormat(
      "%s %s has mode %04o: it is %s by group or others, so other users could %s the token", flag, path, mode,
      (mode & 022) != 0 ? ((mode & 044) != 0 ? "readable and writable" : "writable") : "readable",
      (mode & 022) != 0 ? "replace" : "read");
  if (allow_insecure) {
    std::fprintf(stderr, "%s: warning: %s (allowed by --allow-insecure-token-file-permissions)\n",
                 std::string(program).c_str(), problem.c_str());
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      absl::StrCat(problem, "; fix: chmod 600 ", path,
                   " (Kubernetes: Secret volume defaultMode 0400), or pass --allow-insecure-token-file-permissions"));
}

}  // namespace caliber::auth
