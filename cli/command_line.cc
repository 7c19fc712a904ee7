#include "cli/command_line.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "cli/exit_codes.h"
#include "cli/flag_help.h"
#include "cli/flag_suggest.h"
#include "services/runtime/env_flags.h"

namespace caliber::cli {
namespace {

// This abseil's string_view is its own type, not std::string_view.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// absl's own flags that act during parsing; accepted by every command.
constexpr std::string_view kParsingFlags[] = {"flagfile", "fromenv", "tryfromenv", "undefok",
                                              "version", "only_check_args"};
// absl's help flags print source file paths and, for a subcommand, "No flags matched.":
// they are answered here instead.
constexpr std::string_view kShortHelp[] = {"help", "helpshort"};
constexpr std::string_view kFullHelp[] = {"helpfull", "helppackage", "helpon", "helpmatch"};

template <size_t N>
bool In(const std::string_view (&set)[N], std::string_view name) {
  return std::find(std::begin(set), std::end(set), name) != std::end(set);
}

bool Reads(const CommandSpec& spec, std::string_view name) {
  return std::find(spec.flags.begin(), spec.flags.end(), name) != spec.flags.end();
}

std::string Dashed(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

std::string UnknownFlag(const CommandSpec& spec, std::string_view dashes, std::string_view name) {
  std::string message = absl::StrCat("unknown flag ", Sv(dashes), Dashed(name));
  if (absl::FindCommandLineFlag(Sv(name)) != nullptr) {
    absl::StrAppend(&message, " (a flag of another caliber command, not of `caliber ", Sv(spec.name), "`)");
    return message;
  }
  std::vector<std::string_view> candidates = spec.flags;
  candidates.insert(candidates.end(), std::begin(kShortHelp), std::end(kShortHelp));
  candidates.push_back("helpfull");
  // "-h" is a typo of --help, whatever the distance says.
  const std::string closest = name == "h" ? "help" : ClosestFlagName(name, candidates);
  if (!closest.empty()) absl::StrAppend(&message, " (did you mean --", Dashed(closest), "?)");
  return message;
}

// The first problem with the command line, or "" if absl will parse it; sets `help` (1 short,
// 2 full) when help was asked for.
std::string Check(int argc, char** argv, const CommandSpec& spec, int& help) {
  std::string problem;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;  // the rest is positional
    if (arg.size() < 2 || arg[0] != '-') continue;
    const std::string_view dashes = arg[1] == '-' ? "--" : "-";
    const std::string_view body = arg.substr(dashes.size());
    const size_t eq = body.find('=');
    const std::string_view name = body.substr(0, eq);
    if (In(kShortHelp, name)) help = std::max(help, 1);
    if (In(kFullHelp, name)) help = 2;
    if (In(kShortHelp, name) || In(kFullHelp, name) || In(kParsingFlags, name) || !problem.empty()) continue;
    const absl::CommandLineFlag* flag = Reads(spec, name) ? absl::FindCommandLineFlag(Sv(name)) : nullptr;
    if (flag == nullptr && name.starts_with("no") && Reads(spec, name.substr(2))) {
      const absl::CommandLineFlag* negated = absl::FindCommandLineFlag(Sv(name.substr(2)));
      if (negated != nullptr && negated->IsOfType<bool>() && eq == std::string_view::npos) continue;
    }
    if (flag == nullptr) {
      problem = UnknownFlag(spec, dashes, name);
      continue;
    }
    std::string value;
    if (eq != std::string_view::npos) {
      value = std::string(body.substr(eq + 1));
    } else if (flag->IsOfType<bool>()) {
      continue;  // "--wait": booleans never take the next argument
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      problem = absl::StrCat("flag --", Dashed(name), " needs a value (", FlagSynopsis(name), ")");
      continue;
    }
    // A trial parse; absl::ParseCommandLine sets the flag again from the same text.
    absl::CommandLineFlag* target = absl::FindCommandLineFlag(Sv(name));
    std::string error;
    if (!target->ParseFrom(value, &error)) {
      problem = absl::StrCat("bad value '", value, "' for ", FlagSynopsis(name), " (default ",
                             target->DefaultValue(), ")");
    }
  }
  return problem;
}

}  // namespace

int UsageError(const CommandSpec& spec, std::string_view message) {
  std::fprintf(stderr, "caliber %.*s: %.*s\nusage: %.*s\n`caliber %.*s --help` lists its flags.\n",
               static_cast<int>(spec.name.size()), spec.name.data(), static_cast<int>(message.size()),
               message.data(), static_cast<int>(spec.usage.size()), spec.usage.data(),
               static_cast<int>(spec.name.size()), spec.name.data());
  return kExitUsage;
}

ParsedCommand ParseCommand(int argc, char** argv, const CommandSpec& spec, bool env_overrides) {
  ParsedCommand parsed;
  int help = 0;
  const std::string problem = Check(argc, argv, spec, help);
  if (help > 0) {
    PrintCommandHelp(spec, help == 2, stdout);
    parsed.exit_code = kExitOk;
    return parsed;
  }
  if (!problem.empty()) {
    parsed.exit_code = UsageError(spec, problem);
    return parsed;
  }
  absl::SetProgramUsageMessage(absl::StrCat(Sv(spec.usage), "\n`caliber ", Sv(spec.name), " --help` lists its flags."));
  const std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (env_overrides) {
    // CALIBER_COORDINATOR, CALIBER_TOKEN_FILE, ... for flags not given on the command line.
    if (absl::Status s = runtime::ApplyEnvOverrides(argc, argv); !s.ok()) {
      parsed.exit_code = UsageError(spec, std::string(s.message()));
      return parsed;
    }
  }
  for (size_t i = 1; i < rest.size(); ++i) parsed.args.emplace_back(rest[i]);
  return parsed;
}

}  // namespace caliber::cli
