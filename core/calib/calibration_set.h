// The calibration segments: `nsamples` sequences of `seq_len` tokens taken from a token
// stream (see core/text/token_source.h for the input formats).
//
// How segments are chosen: the stream is viewed as its consecutive, non-overlapping,
// seq_len-aligned windows (the last partial one dropped).
//  - kRandom (default): nsamples distinct windows drawn uniformly with a seeded
//    SplitMix64-driven partial Fisher-Yates shuffle, then kept in stream order. The draw
//    depends only on (number of windows, nsamples, seed), identically on every platform.
//  - kFirst: the first nsamples windows (how the fixtures' REFERENCE.md numbers were made from
//    calib_tokens.i32, whose rows are already a seeded random choice).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace caliber {

enum class CalibSampling { kRandom, kFirst };
absl::StatusOr<CalibSampling> ParseCalibSampling(std::string_view name);  // "random", "first"

struct CalibrationSet {
  int nsamples = 0;
  int seq_len = 0;
  std::vector<int32_t> tokens;  // nsamples * seq_len, segment after segment
  std::vector<int64_t> window_index;  // which stream window each segment is
};

absl::StatusOr<CalibrationSet> SelectCalibrationSegments(const std::vector<int32_t>& stream,
                                                         int nsamples, int seq_len,
                                                         uint64_t seed, CalibSampling sampling);

// `n` windows of `stream` that are not windows of `segments` (the spare windows: held-out data
// of the calibration stream's own domain, e.g. for the transform selection's validation), drawn
// from the spare windows by the same seeded partial Fisher–Yates shuffle as kRandom, kept in
// stream order; window_index lists them. Needs 1 <= n <= the number of spare windows (the error
// gives both counts).
absl::StatusOr<CalibrationSet> SelectSpareWindows(const std::vector<int32_t>& stream, const CalibrationSet& segments,
                                                  int n, uint64_t seed);

// The segments `which` of `calib` (indices into its segments), in that order, as a calibration
// set of their own.
CalibrationSet SubsetOfSegments(const CalibrationSet& calib, const std::vector<int>& which);

}  // namespace caliber
