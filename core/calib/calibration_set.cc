#include "core/calib/calibration_set.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/util/splitmix64.h"

namespace caliber {
namespace {

// The set of the stream's windows `windows` (in that order), each seq_len tokens.
CalibrationSet WindowsOf(const std::vector<int32_t>& stream, int seq_len, std::vector<int64_t> windows) {
  CalibrationSet set;
  set.nsamples = static_cast<int>(windows.size());
  set.seq_len = seq_len;
  set.tokens.reserve(windows.size() * static_cast<size_t>(seq_len));
  for (const int64_t w : windows) {
    set.tokens.insert(set.tokens.end(), stream.begin() + w * seq_len, stream.begin() + (w + 1) * seq_len);
  }
  set.window_index = std::move(windows);
  return set;
}

}  // namespace
absl::StatusOr<CalibSampling> ParseCalibSampling(std::string_view name) {
  if (name == "random") return CalibSampling::kRandom;
  if (name == "first") return CalibSampling::kFirst;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown calibration sampling '", std::string(name), "' (random, first)"));
}

absl::StatusOr<CalibrationSet> SelectCalibrationSegments(const std::vector<int32_t>& stream,
                                                         int nsamples, int seq_len,
                                                         uint64_t seed, CalibSampling sampling) {
  if (nsamples < 1) return absl::InvalidArgumentError("nsamples must be at least 1");
  if (seq_len < 2) return absl::InvalidArgumentError("seq_len must be at least 2");
  const int64_t windows = static_cast<int64_t>(stream.size()) / seq_len;
  if (windows < nsamples) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration data has ", stream.size(), " tokens = ", windows, " windows of ", seq_len,
        ", fewer than the ", nsamples, " samples requested"));
  }
  std::vector<int64_t> chosen(windows);
  std::iota(chosen.begin(), chosen.end(), 0);
  if (sampling == CalibSampling::kRandom) {
    uint64_t state = seed;
    PartialShuffle(chosen, static_cast<size_t>(nsamples), state);
    chosen.resize(nsamples);
    std::sort(chosen.begin(), chosen.end());
  } else {
    chosen.resize(nsamples);
  }
  return WindowsOf(stream, seq_len, std::move(chosen));
}

absl::StatusOr<CalibrationSet> SelectSpareWindows(const std::vector<int32_t>& stream, const CalibrationSet& segments,
                                                  int n, uint64_t seed) {
  const int seq_len = segments.seq_len;
  if (seq_len < 2) return absl::InvalidArgumentError("seq_len must be at least 2");
  const int64_t windows = static_cast<int64_t>(stream.size()) / seq_len;
  std::vector<bool> used(static_cast<size_t>(windows), false);
  for (const int64_t w : segments.window_index) {
    if (w >= 0 && w < windows) used[static_cast<size_t>(w)] = true;
  }
  std::vector<int64_t> spare;
  for (int64_t w = 0; w < windows; ++w) {
    if (!used[static_cast<size_t>(w)]) spare.push_back(w);
  }
  const int64_t available = static_cast<int64_t>(spare.size());
  if (n < 1 || n > available) {
    return absl::InvalidArgumentError(absl::StrCat(
        "asked for ", n, " spare windows of ", seq_len, " tokens, but the calibration stream has ", windows,
        " windows of which ", segments.window_index.size(), " are calibration segments, leaving ", available));
  }
  uint64_t state = seed;
  PartialShuffle(spare, static_cast<size_t>(n), state);
  spare.resize(static_cast<size_t>(n));
  std::sort(spare.begin(), spare.end());
  return WindowsOf(stream, seq_len, std::move(spare));
}

CalibrationSet SubsetOfSegments(const CalibrationSet& calib, const std::vector<int>& which) {
  CalibrationSet out;
  out.nsamples = static_cast<int>(which.size());
  out.seq_len = calib.seq_len;
  for (const int s : which) {
    const auto begin = calib.tokens.begin() + static_cast<ptrdiff_t>(s) * calib.seq_len;
    out.tokens.insert(out.tokens.end(), begin, begin + calib.seq_len);
    if (static_cast<size_t>(s) < calib.window_index.size()) out.window_index.push_back(calib.window_index[s]);
  }
  return out;
}

}  // namespace caliber
