#include "cli/flag_suggest.h"

#include <algorithm>
#include <vector>

namespace caliber::cli {
namespace {

std::string Canonical(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '-', '_');
  return out;
}

}  // namespace

int FlagNameDistance(std::string_view a, std::string_view b) {
  // Optimal string alignment distance over three rows.
  const size_t n = a.size(), m = b.size();
  std::vector<int> two(m + 1), one(m + 1), cur(m + 1);
  for (size_t j = 0; j <= m; ++j) one[j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({one[j] + 1, cur[j - 1] + 1, one[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], two[j - 2] + 1);
      }
    }
    two.swap(one);
    one.swap(cur);
  }
  return one[m];
}

std::string ClosestFlagName(std::string_view typed, std::span<const std::string_view> candidates) {
  const std::string t = Canonical(typed);
  // A typo changes a few characters; more than a third of the name is a different word.
  const int limit = std::max(1, std::min(3, static_cast<int>(t.size()) / 3));
  std::string best;
  int best_distance = limit + 1;
  for (std::string_view c : candidates) {
    const std::string name = Canonical(c);
    int d = FlagNameDistance(t, name);
    // A prefix of a long name ("--reconnect") is as good as a one-character typo.
    if (d > 1 && t.size() >= 4 && name.starts_with(t)) d = 1;
    if (d < best_distance) {
      best_distance = d;
      best = name;
    }
  }
  return best;
}

}  // namespace caliber::cli
