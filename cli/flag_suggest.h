// "Did you mean --model?": the closest of a command's flag names to a mistyped one.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace caliber::cli {

// Edit distance with adjacent transpositions ("modle" -> "model" is 1).
int FlagNameDistance(std::string_view a, std::string_view b);

// The candidate closest to `typed`, or "" when none is close enough to be a plausible typo.
// Names are compared with '-' and '_' treated alike.
std::string ClosestFlagName(std::string_view typed, std::span<const std::string_view> candidates);

}  // namespace caliber::cli
