// The validation hold-out of the transform phase (issue 14): a seeded part of the calibration
// segments that the transform never learns from, on which its candidates are compared
// (validated_selection.h). Segments are whole calibration windows, so the two parts share no
// tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor/matrix.h"

namespace caliber {

struct SegmentSplit {
  std::vector<int> train;       // ascending segment indices
  std::vector<int> validation;  // ascending; train ∪ validation = [0, nsamples), disjoint
};

// round(nsamples · fraction) segments (at least 1, at most nsamples − 1) become the validation
// part, drawn by a SplitMix64 partial Fisher–Yates shuffle seeded with seed ^ kValidationSalt
// (so the draw is not the Hadamard signs' stream): the same on every platform. Needs
// nsamples >= 2 and 0 < fraction < 1.
absl::StatusOr<SegmentSplit> SplitSegments(int nsamples, double fraction, uint64_t seed);

inline constexpr uint64_t kValidationSalt = 0x76616c6964617465ULL;  // "validate"

// The rows of `segments` (each seq_len consecutive rows of `rows`), in the order given.
MatrixF SegmentRows(const MatrixF& rows, int seq_len, const std::vector<int>& segments);

}  // namespace caliber
