// --labels k=v,k2=v2 as a map. Only the list syntax is checked here (every item is key=value,
// keys non-empty and distinct); what a key or value may contain is the coordinator's rule.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace caliber::cli {

// "" -> no labels; empty items ("a=1,") are skipped. A value may be empty ("a=") and may
// contain '=' ("a=b=c" is a -> "b=c").
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(absl::string_view text);

}  // namespace caliber::cli
