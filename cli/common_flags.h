// Flags shared by several `caliber` subcommands (Abseil flags are process-global, so each
// is defined once, here).
#pragma once

#include <string>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, format);
ABSL_DECLARE_FLAG(int, seq_len);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(int, act_bits);
