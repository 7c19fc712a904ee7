#include "services/runtime/env_flags.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace caliber::runtime {
namespace {

// absl's built-in flags: they act during parsing (or on their own), not as settings.
bool IsBuiltin(std::string_view name) {
  static constexpr std::string_view kBuiltins[] = {
      "flagfile",  "fromenv",     "tryfromenv", "undefok",   "help",    "helpfull",
      "helpshort", "helppackage", "helpon",     "helpmatch", "version", "only_check_args"};
  for (std::string_view b : kBuiltins) {
    if (name == b) return true;
  }
  return false;
}

std::string EnvName(std::string_view prefix, std::string_view flag) {
  std::string name(prefix);
  for (char c : flag) {
    name += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : (c == '-' ? '_' : c);
  }
  return name;
}

absl::Status Apply(std::string_view prefix, const std::set<std::string>& skip) {
  std::vector<std::string> bad;
  for (const auto& [name_view, flag] : absl::GetAllFlags()) {
    const std::string name(name_view);
    if (flag == nullptr || flag->IsRetired() || IsBuiltin(name) || skip.contains(name)) continue;
    const std::string variable = EnvName(prefix, name);
    const char* value = std::getenv(variable.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      bad.push_back(
          absl::StrCat(variable, " (for --", name, ", default \"", flag->DefaultValue(), "\")"));
    }
  }
  if (bad.empty()) return absl::OkStatus();
  std::sort(bad.begin(), bad.end());  // GetAllFlags is a hash map: make the message stable
  return absl::InvalidArgumentError(
      absl::StrCat("environment variable", bad.size() > 1 ? "s " : " ", absl::StrJoin(bad, ", "),
                   bad.size() > 1 ? " do" : " does", " not parse as the flag's type"));
}

// Flags named on the command line, by their registered names.
std::set<std::string> CommandLineFlags(int argc, char** argv) {
  std::set<std::string> named;
  for (int i = 1; i < argc && argv[i] != nullptr; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') continue;
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    const size_t eq = arg.find('=');
    std::string name(arg.substr(0, eq));
    for (char& c : name) c = c == '-' ? '_' : c;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && name.starts_with("no")) {
      absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) {
        named.insert(name.substr(2));
        continue;
      }
    }
    if (flag == nullptr) continue;
    named.insert(name);
    // "--name value": the next argument is the value, not a flag (booleans take no separate
    // value in absl).
    if (eq == std::string_view::npos && !flag->IsOfType<bool>()) ++i;
  }
  return named;
}

}  // namespace

absl::Status ApplyEnvOverrides(std::string_view prefix) { return Apply(prefix, {}); }

absl::Status ApplyEnvOverrides(int argc, char** argv, std::string_view prefix) {
  return Apply(prefix, CommandLineFlags(argc, argv));
}

}  // namespace caliber::runtime
