// The margin rule of the end-to-end selection (selection_objective = nll; issue 14).
//
// Candidates are scored by the mean token NLL of the model quantized with each of them, on a few
// held-out calibration segments. Differences between transforms are often ~0.1% of the NLL, the
// size of the noise of a 16-segment estimate, and the argmin of noisy scores prefers a transform
// over identity as often as not. So a candidate replaces identity only when its per-segment
// gain over identity (paired: the same segments) is larger than `margin` standard errors of
// that gain's mean; among the candidates that pass, the lowest mean NLL wins (ties: the earlier).
// margin = 0 is the plain argmin (a gain of exactly 0 never passes).
#pragma once

#include <cstddef>
#include <vector>

#include "absl/status/statusor.h"

namespace caliber {

// Candidate minus baseline, segment by segment: the mean difference and the standard error of
// that mean (sample standard deviation / sqrt(n); 0 for n = 1).
struct PairedDifference {
  double mean = 0;
  double standard_error = 0;
};
absl::StatusOr<PairedDifference> PairedNllDifference(const std::vector<double>& candidate,
                                                     const std::vector<double>& baseline);

// The chosen index of `segment_nll` (one vector per candidate, each the NLL per held-out
// segment; candidate 0 is identity) under the margin rule. Errors: no candidates, vectors of
// different or zero length, margin negative or not finite.
absl::StatusOr<size_t> ChooseByHeldoutNll(const std::vector<std::vector<double>>& segment_nll, double margin);

}  // namespace caliber
