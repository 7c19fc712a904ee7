// Subcommands of the `caliber` binary. Each takes argv with the command name at argv[0]
// and returns the process exit code.
#pragma once

namespace caliber::cli {

int RunEval(int argc, char** argv);
int RunQuantize(int argc, char** argv);
int RunSubmit(int argc, char** argv);
int RunWatch(int argc, char** argv);
int RunStatus(int argc, char** argv);
int RunList(int argc, char** argv);
int RunCancel(int argc, char** argv);

}  // namespace caliber::cli
