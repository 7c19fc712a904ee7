#include "services/metrics/label_values.h"

namespace caliber::metrics {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

}  // namespace

size_t LabelIndex(std::string_view value, std::span<const std::string_view> set) {
  for (size_t i = 0; i < set.size(); ++i) {
    if (EqualsIgnoreCase(value, set[i])) return i;
  }
  return set.size();
}

std::string_view CanonicalLabel(std::string_view value, std::span<const std::string_view> set) {
  const size_t i = LabelIndex(value, set);
  return i < set.size() ? set[i] : kOther;
}

}  // namespace caliber::metrics
