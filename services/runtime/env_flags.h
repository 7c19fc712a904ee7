// Flags from environment variables, for containers: flag `foo_bar` takes its value from
// CALIBER_FOO_BAR when that variable is set. Precedence, highest first:
//   command line  >  environment  >  --flagfile (config file)  >  the flag's default.
// Use:
//   absl::ParseCommandLine(argc, argv);            // command line and --flagfile
//   absl::Status s = ApplyEnvOverrides(argc, argv);  // env, except flags named on argv
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace caliber::runtime {

// For every registered flag (absl's own --flagfile, --help... excepted) whose variable
// <prefix><FLAG_NAME_UPPERCASED> is set, parses the variable's value into the flag (an empty
// value is applied as such). Unconditional: called after absl::ParseCommandLine it would beat
// the command line, so use it alone only before parsing (then the command line AND the flagfile
// beat the environment), or use the argv overload below. A value that does not parse ->
// InvalidArgument naming every such variable (never echoing values: they may be secrets); the
// other variables are still applied.
absl::Status ApplyEnvOverrides(std::string_view prefix = "CALIBER_");

// Same, after absl::ParseCommandLine(argc, argv), skipping flags given on the command line:
// "--name", "-name", "--name=value", "--noname" (booleans), and dashed spellings ("--foo-bar" is
// foo_bar); arguments after "--" are positional. Flags read from --flagfile do not count as
// given, so the environment overrides them.
absl::Status ApplyEnvOverrides(int argc, char** argv, std::string_view prefix = "CALIBER_");

}  // namespace caliber::runtime
