// `caliber`: the command-line entry point. Each subcommand lives in its own file and
// registers itself in the table below.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "cli/commands.h"
#include "services/runtime/flag_names.h"

namespace {

struct Command {
  std::string_view name;
  std::string_view summary;
  int (*run)(int argc, char** argv);
};

constexpr Command kCommands[] = {
    {"eval", "perplexity of a model on text or token ids", caliber::cli::RunEval},
    {"quantize", "one-shot quantization of a model into a GPTQ (W·A16) or compressed-tensors (W·A8) checkpoint",
     caliber::cli::RunQuantize},
    {"submit", "submit a quantization job to a coordinator (--wait follows it)", caliber::cli::RunSubmit},
    {"watch", "follow a job's progress until it ends", caliber::cli::RunWatch},
    {"status", "show a job", caliber::cli::RunStatus},
    {"list", "list your jobs", caliber::cli::RunList},
    {"cancel", "cancel a job", caliber::cli::RunCancel},
};

void PrintUsage(std::FILE* out) {
  std::fprintf(out, "usage: caliber <command> [flags]\n\ncommands:\n");
  for (const Command& c : kCommands) {
    std::fprintf(out, "  %-10.*s %.*s\n", static_cast<int>(c.name.size()), c.name.data(),
                 static_cast<int>(c.summary.size()), c.summary.data());
  }
  std::fprintf(out, "\n`caliber <command> --help` lists a command's flags.\n");
}

bool AsksForHelp(const char* arg) {
  for (const char* h : {"--help", "-h", "--helpshort", "--helpfull", "-help", "-helpfull"}) {
    if (std::strcmp(arg, h) == 0) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(stderr);
    return 2;
  }
  if (AsksForHelp(argv[1])) {
    PrintUsage(stdout);
    return 0;
  }
  caliber::runtime::NormalizeFlagNames(argc, argv);
  for (const Command& c : kCommands) {
    if (c.name == argv[1]) return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "caliber: unknown command '%s'\n", argv[1]);
  PrintUsage(stderr);
  return 2;
}
