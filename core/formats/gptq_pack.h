// GPTQ "v1" checkpoint tensors of one quantized linear layer, the layout AutoGPTQ writes and
// vLLM / transformers read:
//   qweight int32 [in·bits/32, out]: codes packed along the input dimension,
//   qzeros  int32 [groups, out·bits/32]: (zero - 1) packed along the output dimension,
//   scales  [groups, out] (the writer stores them as fp16), g_idx int32 [in].
// Fields are packed lowest bits first as one continuous little-endian bit stream per packed
// row/column, which for 3 bits is AutoGPTQ's layout of 32 values in 3 words with fields
// spanning word boundaries. Needs in % 32 == 0 and out % (32 / bits) == 0 (out % 32 for 3 bits).
//
// The v1 format stores zero - 1. A zero of 0 (possible only with asymmetric grids) is written as
// the all-ones field; UnpackGptq reads it back as 0 ((field + 1) mod 2^bits), but v1 kernels
// compute field + 1 without the wrap and would see 2^bits.
// Only Q is packed; a low-rank part B·A is stored separately by the writer.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/quant/quantized_linear.h"
#include "core/tensor/matrix.h"

namespace caliber {

struct GptqTensors {
  int bits = 4;
  int group_size = -1;         // as in quantize_config.json; -1: per channel
  IntMatrix qweight;           // [in·bits/32 x out]
  IntMatrix qzeros;            // [num_groups x out·bits/32]
  MatrixF scales;              // [num_groups x out]
  std::vector<int32_t> g_idx;  // [in]
};

absl::StatusOr<GptqTensors> PackGptq(const QuantizedLinear& q);

// The inverse of PackGptq: codes, zeros, scales, g_idx of a [out x in] layer (out and in from
// the tensor shapes); `sym` comes from the checkpoint's quantize_config.
absl::StatusOr<QuantizedLinear> UnpackGptq(const GptqTensors& t, bool sym);

// One packed stream: values[k] (each < 2^bits) occupies bits [k·bits, (k+1)·bits) of the word
// sequence. values.size()·bits must be a multiple of 32.
std::vector<uint32_t> PackBits(const std::vector<uint32_t>& values, int bits);
std::vector<uint32_t> UnpackBits(const std::vector<uint32_t>& words, int bits);

}  // namespace caliber
