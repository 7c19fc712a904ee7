#include "core/transform/heldout_margin.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace caliber {
namespace {

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (const double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

absl::StatusOr<PairedDifference> PairedNllDifference(const std::vector<double>& candidate,
                                                     const std::vector<double>& baseline) {
  if (candidate.empty() || candidate.size() != baseline.size()) {
    return absl::InvalidArgumentError(absl::StrCat("paired NLL difference needs equal non-empty segment lists, got ",
                                                   candidate.size(), " and ", baseline.size()));
  }
  const size_t n = candidate.size();
  std::vector<double> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = candidate[i] - baseline[i];
  PairedDifference out;
  out.mean = Mean(d);
  if (n > 1) {
    double ss = 0;
    for (const double x : d) ss += (x - out.mean) * (x - out.mean);
    out.standard_error = std::sqrt(ss / static_cast<double>(n - 1) / static_cast<double>(n));
  }
  return out;
}

absl::StatusOr<size_t> ChooseByHeldoutNll(const std::vector<std::vector<double>>& segment_nll, double margin) {
  if (segment_nll.empty()) return absl::InvalidArgumentError("no candidates to choose from");
  if (!std::isfinite(margin) || margin < 0) {
    return absl::InvalidArgumentError(absl::StrCat("selection margin must be finite and >= 0, got ", margin));
  }
  size_t chosen = 0;
  double best = 0;
  for (size_t c = 1; c < segment_nll.size(); ++c) {
    absl::StatusOr<PairedDifference> d = PairedNllDifference(segment_nll[c], segment_nll[0]);
    if (!d.ok()) return d.status();
    const bool passes = d->mean + margin * d->standard_error < 0;
    if (passes && (chosen == 0 || d->mean < best)) {
      chosen = c;
      best = d->mean;
    }
  }
  return chosen;
}

}  // namespace caliber
