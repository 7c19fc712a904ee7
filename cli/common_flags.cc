#include "cli/common_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, model, "", "model directory (config.json, safetensors, tokenizer)");
ABSL_FLAG(std::string, format, "auto",
          "input format of --text/--tokens/--calib: auto (by extension), text, jsonl, u32, i32");
ABSL_FLAG(int, seq_len, 256, "tokens per window (eval) or per calibration segment (quantize)");
ABSL_FLAG(bool, json, false, "print one JSON object instead of a table");
