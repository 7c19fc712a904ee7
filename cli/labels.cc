#include "cli/labels.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace caliber::cli {

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(absl::string_view text) {
  std::map<std::string, std::string> labels;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    const size_t eq = item.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--labels: '", item, "' is not key=value (write '", item, "=' for an empty value)"));
    }
    const std::string key(item.substr(0, eq));
    if (key.empty()) return absl::InvalidArgumentError(absl::StrCat("--labels: '", item, "' has an empty key"));
    if (!labels.emplace(key, std::string(item.substr(eq + 1))).second) {
      return absl::InvalidArgumentError(absl::StrCat("--labels: key '", key, "' is given twice"));
    }
  }
  return labels;
}

}  // namespace caliber::cli
