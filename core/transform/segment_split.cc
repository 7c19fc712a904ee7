#include "core/transform/segment_split.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/util/splitmix64.h"

namespace caliber {
absl::StatusOr<SegmentSplit> SplitSegments(int nsamples, double fraction, uint64_t seed) {
  if (nsamples < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("a validation hold-out needs at least 2 calibration segments, got ", nsamples));
  }
  if (!(fraction > 0 && fraction < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("validation fraction must be in (0, 1), got ", fraction));
  }
  const int k = std::clamp(static_cast<int>(std::lround(nsamples * fraction)), 1, nsamples - 1);
  std::vector<int> order(static_cast<size_t>(nsamples));
  for (int i = 0; i < nsamples; ++i) order[static_cast<size_t>(i)] = i;
  uint64_t state = seed ^ kValidationSalt;
  PartialShuffle(order, static_cast<size_t>(k), state);
  SegmentSplit s;
  s.validation.assign(order.begin(), order.begin() + k);
  s.train.assign(order.begin() + k, order.end());
  std::sort(s.validation.begin(), s.validation.end());
  std::sort(s.train.begin(), s.train.end());
  return s;
}

MatrixF SegmentRows(const MatrixF& rows, int seq_len, const std::vector<int>& segments) {
  MatrixF out(static_cast<Eigen::Index>(segments.size()) * seq_len, rows.cols());
  for (size_t i = 0; i < segments.size(); ++i) {
    out.middleRows(static_cast<Eigen::Index>(i) * seq_len, seq_len) =
        rows.middleRows(static_cast<Eigen::Index>(segments[i]) * seq_len, seq_len);
  }
  return out;
}

}  // namespace caliber
