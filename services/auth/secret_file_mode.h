// Token files are secrets: one that other users can read or write leaks or replaces the token.
// Daemons and the CLI refuse such a file unless the operator says they know
// (--allow-insecure-token-file-permissions), in which case they warn.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace caliber::auth {

// OK when `path` (after symlinks: Kubernetes mounts Secrets as links) grants nothing to group or
// others (mode & 077 == 0). Otherwise FailedPrecondition naming `flag`, the file, its mode and
// the fix; with `allow_insecure` a warning is printed (prefixed by `program`) and OK returned.
// A file that cannot be stat()ed is left to the reader to report.
absl::Status CheckSecretFileMode(absl::string_view program, absl::string_view flag, const std::string& path,
                                 bool allow_insecure);

}  // namespace caliber::auth
