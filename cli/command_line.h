// The command line of one `caliber` subcommand: its own help (--help lists the flags it reads,
// with their defaults), and usage errors that exit 2 with a hint instead of absl's exit 1
// (an unknown flag gets "did you mean --model?", a bad value names the expected type).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace caliber::cli {

struct CommandSpec {
  std::string_view name;   // "submit"
  std::string_view usage;  // "caliber submit --model URI ..."
  // Registered (underscore) names of the flags this command reads, in the order --help lists
  // them. Flags of other subcommands are usage errors here: they would be silently ignored.
  std::vector<std::string_view> flags;
  std::string_view notes;  // printed after the flags by --help ("" for none)
};

struct ParsedCommand {
  std::optional<int> exit_code;   // set: return this now (help printed: 0, usage error: 2)
  std::vector<std::string> args;  // positional arguments after the command name
};

// argv[0] is the command name; flag names were normalized (--seq-len -> --seq_len) by main.
// With `env_overrides`, flags not named on the command line take CALIBER_<FLAG> values.
ParsedCommand ParseCommand(int argc, char** argv, const CommandSpec& spec, bool env_overrides);

// Prints "caliber NAME: MESSAGE", the usage line and a pointer to --help; returns kExitUsage.
int UsageError(const CommandSpec& spec, std::string_view message);

}  // namespace caliber::cli
