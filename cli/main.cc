// `caliber`: the command-line entry point. Each subcommand lives in its own file and
// registers itself in the table below.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "cli/commands.h"

namespace {

struct Command {
  std::string_view name;
  std::string_view summary;
  int (*run)(int argc, char** argv);
};

constexpr Command kCommands[] = {
    {"eval", "perplexity of a model on text or token ids", caliber::cli::RunEval},
    {"quantize", "one-shot quantization of a model into a GPTQ checkpoint",
     caliber::cli::RunQuantize},
};

void PrintUsage() {
  std::fprintf(stderr, "usage: caliber <command> [flags]\n\ncommands:\n");
  for (const Command& c : kCommands) {
    std::fprintf(stderr, "  %-10.*s %.*s\n", static_cast<int>(c.name.size()), c.name.data(),
                 static_cast<int>(c.summary.size()), c.summary.data());
  }
  std::fprintf(stderr, "\n`caliber <command> --help` lists a command's flags.\n");
}

// Abseil flag names are identifiers (--seq_len); users type --seq-len. Rewrite dashes in
// the name part of every "--flag[=value]" argument before the command parses them.
void NormalizeFlagNames(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* arg = argv[i];
    if (std::strncmp(arg, "--", 2) != 0 || arg[2] == '\0') continue;
    for (char* c = arg + 2; *c != '\0' && *c != '='; ++c) {
      if (*c == '-') *c = '_';
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    PrintUsage();
    return argc < 2 ? 2 : 0;
  }
  NormalizeFlagNames(argc, argv);
  for (const Command& c : kCommands) {
    if (c.name == argv[1]) return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "caliber: unknown command '%s'\n", argv[1]);
  PrintUsage();
  return 2;
}
