#include "cli/common_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, model, "", "model directory (config.json, safetensors, tokenizer)");
ABSL_FLAG(std::string, format, "auto",
          "input format of --text/--tokens/--calib: auto (by extension), text, jsonl, u32, i32");
ABSL_FLAG(int, seq_len, 256, "tokens per window (eval) or per calibration segment (quantize)");
ABSL_FLAG(bool, json, false, "print one JSON object instead of a table");
ABSL_FLAG(int, act_bits, 0,
          "activation bits: 16 (float) or 8 (per-token dynamic INT8 at every linear input, W·A8). "
          "quantize/submit: 0 means 16; a W·A8 job writes a compressed-tensors checkpoint. "
          "eval: 0 means what the checkpoint is served with (8 for a compressed-tensors "
          "W·A8 checkpoint, else 16)");
