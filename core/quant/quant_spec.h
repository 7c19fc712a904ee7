// How one linear layer is quantized. Field names follow the GPTQ reference code (IST-DASLab
// gptq.py / quant.py) and the GPTQ-intrinsic LoRA paper, so a spec reads like their flags.
#pragma once

#include "absl/status/status.h"

namespace caliber {

struct QuantSpec {
  int bits = 4;                // 2, 3, 4 or 8
  int group_size = 128;        // input columns sharing one scale/zero; -1: one per output channel
  bool sym = true;             // symmetric grid, zero fixed at 2^(bits-1)
  bool mse = false;            // quant.py's search for a shrunken clipping range (norm 2.4)
  bool act_order = false;      // quantize columns by decreasing diag(H) ("desc_act")
  bool static_groups = false;  // group params from the unquantized W, fixed before the sweep
  double damp = 0.01;          // percdamp: damp * mean(diag H) is added to diag H
  int block_size = 128;        // columns per lazy-batch block
  int max_damp_retries = 4;    // on a failed Cholesky, damp *= 10, at most this many (0..30) times
  int lora_rank = 0;           // r of the low-rank part B·A (gptq_lora only)
  int lora_a_bits = 0;         // 0: A stays float; else A is RTN-quantized per row, symmetric
  int refine_iters = 0;        // Bid-Up / OLrC alternations after gptq_lora
};

// InvalidArgument naming the offending field when `spec` cannot quantize a layer with
// `in_features` input columns. group_size may be -1, 32, 64, 128 (the last group may then be
// shorter) or any positive divisor of in_features.
absl::Status Validate(const QuantSpec& spec, int in_features);

}  // namespace caliber
