// Abseil flag names are identifiers (--seq_len); users type --seq-len. Rewrites dashes in the
// name part of every "--flag[=value]" argument, in place, before the flags are parsed.
#pragma once

namespace caliber::runtime {

void NormalizeFlagNames(int argc, char** argv);

}  // namespace caliber::runtime
