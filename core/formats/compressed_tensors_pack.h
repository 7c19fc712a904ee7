// compressed-tensors "pack-quantized" tensors of one quantized linear layer W [out x in], the
// layout vLLM's compressed-tensors integration reads (vllm-project/compressed-tensors,
// compressors/quantized_compressors/pack_quantized.py: pack_to_int32 / unpack_from_int32):
//   weight_packed     int32 [out, ceil(in / f)]        signed codes packed along the INPUT dim
//   weight_scale      model dtype [out, groups]
//   weight_shape      int64 [2] = {out, in}
//   weight_zero_point int32 [ceil(out / f), groups]    asymmetric grids only, packed along OUT
//   weight_g_idx      int32 [in]                       actorder "group" only
// with f = 32 / bits values per int32 word. pack_to_int32 adds the offset 2^(bits-1) to each
// signed value (int8 in [-2^(bits-1), 2^(bits-1))), pads the packed dimension with zeros to a
// multiple of f, and stores value k of a word at bits [k·bits, (k+1)·bits) (lowest first); a
// word never splits a value (3 bits: 10 values per word, the top 2 bits zero).
// Dequantization: W[o, i] = (q[o, i] - zp[o, g]) · scale[o, g] with g = g_idx[i] (i / group_size
// without g_idx, 0 for strategy channel) and zp = 0 for symmetric grids.
// Caliber's codes are unsigned, code = q + 2^(bits-1), and its zero points likewise
// zero = zp + 2^(bits-1) (2^(bits-1) for symmetric grids), so a stored field is exactly
// Caliber's code (zero point): (q - zp) = (code - zero).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/quant/quantized_linear.h"
#include "core/tensor/matrix.h"

namespace caliber {

struct CompressedTensorsTensors {
  int bits = 4;
  int group_size = -1;                // -1: strategy channel (one group)
  IntMatrix weight_packed;            // [out x ceil(in / (32/bits))]
  MatrixF weight_scale;               // [out x groups]
  std::array<int64_t, 2> weight_shape{};  // {out, in}
  IntMatrix weight_zero_point;        // [ceil(out / (32/bits)) x groups]; empty when symmetric
  std::vector<int32_t> weight_g_idx;  // [in]; empty unless actorder "group"
};

// pack_to_int32 of one row of unsigned fields (offset already added, each < 2^bits):
// ceil(n / f) words, value k in word k / f at bit (k % f)·bits. bits in [1, 8].
std::vector<uint32_t> PackInt32(absl::Span<const uint32_t> fields, int bits);
// The inverse for `count` fields (padding dropped).
std::vector<uint32_t> UnpackInt32(absl::Span<const uint32_t> words, int bits, size_t count);

// `store_g_idx`: write weight_g_idx (actorder "group"); otherwise q.g_idx must be the plain
// column order (i / group_size), which the format implies without it. Needs bits 2, 3, 4 or 8,
// group_size -1 or a divisor of in_features, and (with g_idx) equally sized groups, as
// compressed-tensors' group quantization does.
absl::StatusOr<CompressedTensorsTensors> PackCompressedTensors(const QuantizedLinear& q,
                                                               bool store_g_idx);

// The inverse: codes, zeros, scales, g_idx of the layer (shape from weight_shape).
absl::StatusOr<QuantizedLinear> UnpackCompressedTensors(const CompressedTensorsTensors& t, bool sym);

}  // namespace caliber
