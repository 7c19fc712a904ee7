#include "core/calib/calibration_set.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace caliber {
namespace {

// SplitMix64: a tiny generator whose output is fixed by its definition (std:: distributions
// are implementation-defined, which would make the draw differ between standard libraries).
uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
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
    for (int64_t i = 0; i < nsamples; ++i) {
      const int64_t j = i + static_cast<int64_t>(SplitMix64(state) % static_cast<uint64_t>(windows - i));
      std::swap(chosen[i], chosen[j]);
    }
    chosen.resize(nsamples);
    std::sort(chosen.begin(), chosen.end());
  } else {
    chosen.resize(nsamples);
  }
  CalibrationSet set;
  set.nsamples = nsamples;
  set.seq_len = seq_len;
  set.window_index = chosen;
  set.tokens.reserve(static_cast<size_t>(nsamples) * seq_len);
  for (const int64_t w : chosen) {
    set.tokens.insert(set.tokens.end(), stream.begin() + w * seq_len,
                      stream.begin() + (w + 1) * seq_len);
  }
  return set;
}

}  // namespace caliber
