// `caliber <command> --help`: the command's usage and the flags it reads, each with its
// dashed name, value type, default and one-line meaning. --helpfull adds the flags every
// command accepts (--flagfile, ...). Unlike absl's own help, no source file paths.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include "cli/command_line.h"

namespace caliber::cli {

// "--seq-len=INT" / "--wait": how a user types the flag `name` (registered, underscored).
std::string FlagSynopsis(std::string_view name);

void PrintCommandHelp(const CommandSpec& spec, bool full, std::FILE* out);

}  // namespace caliber::cli
