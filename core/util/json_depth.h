// A cheap pre-check run before building a JSON DOM from untrusted text: nlohmann recurses per
// nesting level, so "[[[[..." of a few MB would cost seconds and hundreds of MB.
#pragma once

#include <string_view>

namespace caliber {

// True when brackets nest at most `max_depth` deep, counted outside strings. Unbalanced
// input is left to the parser to reject.
bool JsonNestingWithin(std::string_view text, int max_depth);

}  // namespace caliber
