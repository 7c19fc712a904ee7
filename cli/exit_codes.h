// Exit codes of the `caliber` binary, as the README documents them. Scripts branch on these,
// so a code keeps its meaning: 1 is "the job failed (or the request was refused)", never
// "the connection dropped".
#pragma once

namespace caliber::cli {

inline constexpr int kExitOk = 0;           // done / the job succeeded
inline constexpr int kExitFailed = 1;       // the job failed, or the coordinator refused the request
inline constexpr int kExitUsage = 2;        // bad command line (unknown flag, bad value, missing argument)
inline constexpr int kExitCancelled = 3;    // the job was cancelled
inline constexpr int kExitLostContact = 4;  // watch: no contact with the coordinator for --reconnect-timeout

}  // namespace caliber::cli
