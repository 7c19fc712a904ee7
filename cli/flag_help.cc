#include "cli/flag_help.h"

#include <algorithm>
#include <cstdint>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace caliber::cli {
namespace {

// This abseil's string_view is its own type, not std::string_view.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// absl's flags that every command accepts (--help and --helpfull are ParseCommand's).
constexpr std::string_view kGeneralFlags[] = {"flagfile", "fromenv", "tryfromenv", "undefok"};

std::string Dashed(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

std::string_view TypeName(const absl::CommandLineFlag& flag) {
  if (flag.IsOfType<int>() || flag.IsOfType<int64_t>()) return "INT";
  if (flag.IsOfType<uint64_t>() || flag.IsOfType<uint32_t>()) return "UINT";
  if (flag.IsOfType<double>() || flag.IsOfType<float>()) return "NUMBER";
  if (flag.IsOfType<absl::Duration>()) return "DURATION";
  if (flag.IsOfType<std::vector<std::string>>()) return "LIST";
  return "STRING";
}

std::string DefaultText(const absl::CommandLineFlag& flag) {
  if (flag.IsOfType<std::string>()) return absl::StrCat("\"", flag.DefaultValue(), "\"");
  return flag.DefaultValue();
}

void PrintFlag(std::string_view name, std::FILE* out, bool with_default) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(Sv(name));
  if (flag == nullptr) return;
  const std::string synopsis = FlagSynopsis(name);
  std::string line = absl::StrCat("  ", synopsis);
  line.append(synopsis.size() < 28 ? 30 - synopsis.size() : 2, ' ');
  absl::StrAppend(&line, flag->Help());
  if (with_default) absl::StrAppend(&line, " [default: ", DefaultText(*flag), "]");
  std::fprintf(out, "%s\n", line.c_str());
}

}  // namespace

std::string FlagSynopsis(std::string_view name) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(Sv(name));
  if (flag == nullptr || flag->IsOfType<bool>()) return absl::StrCat("--", Dashed(name));
  return absl::StrCat("--", Dashed(name), "=", Sv(TypeName(*flag)));
}

void PrintCommandHelp(const CommandSpec& spec, bool full, std::FILE* out) {
  std::fprintf(out, "usage: %.*s\n\nflags:\n", static_cast<int>(spec.usage.size()), spec.usage.data());
  for (std::string_view name : spec.flags) PrintFlag(name, out, true);
  if (full) {
    std::fprintf(out, "\nflags of every command:\n");
    for (std::string_view name : kGeneralFlags) PrintFlag(name, out, false);
    std::fprintf(out, "  --help                        this command's flags\n");
    std::fprintf(out, "  --helpfull                    this command's flags and these\n");
  }
  if (!spec.notes.empty()) {
    std::fprintf(out, "\n%.*s\n", static_cast<int>(spec.notes.size()), spec.notes.data());
  }
}

}  // namespace caliber::cli
