// Subcommands of the `caliber` binary. Each takes argv with the command name at argv[0]
// and returns the process exit code.
#pragma once

namespace caliber::cli {

int RunEval(int argc, char** argv);
int RunQuantize(int argc, char** argv);

}  // namespace caliber::cli
