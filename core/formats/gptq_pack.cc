#include "core/formats/gptq_pack.h"

#include <bit>

#include "absl/strings/str_format.h"
#include "core/quant/quant_grid.h"

namespace caliber {
namespace {

bool SupportedBits(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

// Output channels per packed group of words: 32 / bits values fill whole words, except 3 bits
// whose fields only realign after 32 values (3 words).
int OutMultiple(int bits) { return bits == 3 ? 32 : 32 / bits; }

}  // namespace

std::vector<uint32_t> PackBits(const std::vector<uint32_t>& values, int bits) {
  std::vector<uint32_t> words(values.size() * static_cast<size_t>(bits) / 32, 0u);
  const uint32_t mask = (1u << bits) - 1;
  for (size_t k = 0; k < values.size(); ++k) {
    const size_t bit = k * static_cast<size_t>(bits);
    const size_t word = bit / 32;
    const unsigned offset = static_cast<unsigned>(bit % 32);
    const uint32_t v = values[k] & mask;
    words[word] |= v << offset;
    if (offset + static_cast<unsigned>(bits) > 32) words[word + 1] |= v >> (32 - offset);
  }
  return words;
}

std::vector<uint32_t> UnpackBits(const std::vector<uint32_t>& words, int bits) {
  std::vector<uint32_t> values(words.size() * 32 / static_cast<size_t>(bits));
  const uint32_t mask = (1u << bits) - 1;
  for (size_t k = 0; k < values.size(); ++k) {
    const size_t bit = k * static_cast<size_t>(bits);
    const size_t word = bit / 32;
    const unsigned offset = static_cast<unsigned>(bit % 32);
    uint32_t v = words[word] >> offset;
    if (offset + static_cast<unsigned>(bits) > 32) v |= words[word + 1] << (32 - offset);
    values[k] = v & mask;
  }
  return values;
}

absl::StatusOr<GptqTensors> PackGptq(const QuantizedLinear& q) {
  const int bits = q.bits;
  const int out = q.out_features;
  const int in = q.in_features;
  if (!SupportedBits(bits)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("GPTQ packing supports 2, 3, 4 or 8 bits, got %d", bits));
  }
  if (in <= 0 || in % 32 != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GPTQ packing needs in_features divisible by 32, got %d", in));
  }
  if (out <= 0 || out % OutMultiple(bits) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GPTQ packing of %d-bit zeros needs out_features divisible by %d, got %d", bits,
        OutMultiple(bits), out));
  }
  const int groups = q.num_groups();
  if (q.codes.rows() != out || q.codes.cols() != in || q.scales.cols() != out ||
      q.zeros.rows() != groups || q.zeros.cols() != out ||
      static_cast<int>(q.g_idx.size()) != in || groups <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GPTQ packing: inconsistent layer [%d x %d]: codes %dx%d, scales %dx%d, zeros %dx%d, "
        "g_idx %d",
        out, in, q.codes.rows(), q.codes.cols(), q.scales.rows(), q.scales.cols(),
        q.zeros.rows(), q.zeros.cols(), q.g_idx.size()));
  }
  const uint32_t maxq = static_cast<uint32_t>(MaxQ(bits));
  for (int i = 0; i < in; ++i) {
    const int g = q.g_idx[static_cast<size_t>(i)];
    if (g < 0 || g >= groups) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "GPTQ packing: g_idx[%d] = %d is outside [0, %d)", i, g, groups));
    }
  }
  if (q.codes.size() > 0 && q.codes.maxCoeff() > maxq) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GPTQ packing: a code exceeds %d for %d bits", maxq, bits));
  }
  if (q.zeros.minCoeff() < 0 || q.zeros.maxCoeff() > static_cast<int32_t>(maxq)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GPTQ packing: zeros must lie in [0, %d] for %d bits", maxq, bits));
  }

  GptqTensors t;
  t.bits = bits;
  t.group_size = q.group_size;
  t.scales = q.scales;
  t.g_idx = q.g_idx;
  t.qweight.resize(in * bits / 32, out);
  std::vector<uint32_t> values(static_cast<size_t>(in));
  for (int o = 0; o < out; ++o) {
    for (int i = 0; i < in; ++i) values[static_cast<size_t>(i)] = q.codes(o, i);
    const std::vector<uint32_t> words = PackBits(values, bits);
    for (size_t w = 0; w < words.size(); ++w) {
      t.qweight(static_cast<Eigen::Index>(w), o) = std::bit_cast<int32_t>(words[w]);
    }
  }
  t.qzeros.resize(groups, out * bits / 32);
  values.resize(static_cast<size_t>(out));
  for (int g = 0; g < groups; ++g) {
    // v1 stores zero - 1 (modulo 2^bits, see the header).
    for (int o = 0; o < out; ++o) {
      values[static_cast<size_t>(o)] = static_cast<uint32_t>(q.zeros(g, o) - 1) & maxq;
    }
    const std::vector<uint32_t> words = PackBits(values, bits);
    for (size_t w = 0; w < words.size(); ++w) {
      t.qzeros(g, static_cast<Eigen::Index>(w)) = std::bit_cast<int32_t>(words[w]);
    }
  }
  return t;
}

absl::StatusOr<QuantizedLinear> UnpackGptq(const GptqTensors& t, bool sym) {
  const int bits = t.bits;
  if (!SupportedBits(bits)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("GPTQ unpacking supports 2, 3, 4 or 8 bits, got %d", bits));
  }
  const int out = static_cast<int>(t.qweight.cols());
  const int in = static_cast<int>(t.qweight.rows()) * 32 / bits;
  const int groups = static_cast<int>(t.scales.rows());
  if ((t.qweight.rows() * 32) % bits != 0 || in % 32 != 0 || out == 0 ||
      t.scales.cols() != out || t.qzeros.rows() != groups ||
      t.qzeros.cols() * 32 != static_cast<Eigen::Index>(out) * bits ||
      static_cast<int>(t.g_idx.size()) != in || groups <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GPTQ unpacking: inconsistent %d-bit tensors: qweight %dx%d, qzeros %dx%d, scales %dx%d, "
        "g_idx %d",
        bits, t.qweight.rows(), t.qweight.cols(), t.qzeros.rows(), t.qzeros.cols(),
        t.scales.rows(), t.scales.cols(), t.g_idx.size()));
  }
  for (int i = 0; i < in; ++i) {
    const int g = t.g_idx[static_cast<size_t>(i)];
    if (g < 0 || g >= groups) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "GPTQ unpacking: g_idx[%d] = %d is outside [0, %d)", i, g, groups));
    }
  }
  const uint32_t maxq = static_cast<uint32_t>(MaxQ(bits));

  QuantizedLinear q;
  q.out_features = out;
  q.in_features = in;
  q.bits = bits;
  q.group_size = t.group_size;
  q.sym = sym;
  q.scales = t.scales;
  q.g_idx = t.g_idx;
  q.codes.resize(out, in);
  std::vector<uint32_t> words(static_cast<size_t>(t.qweight.rows()));
  for (int o = 0; o < out; ++o) {
    for (size_t w = 0; w < words.size(); ++w) {
      words[w] = std::bit_cast<uint32_t>(t.qweight(static_cast<Eigen::Index>(w), o));
    }
    const std::vector<uint32_t> values = UnpackBits(words, bits);
    for (int i = 0; i < in; ++i) {
      q.codes(o, i) = static_cast<uint8_t>(values[static_cast<size_t>(i)]);
    }
  }
  q.zeros.resize(groups, out);
  words.resize(static_cast<size_t>(t.qzeros.cols()));
  for (int g = 0; g < groups; ++g) {
    for (size_t w = 0; w < words.size(); ++w) {
      words[w] = std::bit_cast<uint32_t>(t.qzeros(g, static_cast<Eigen::Index>(w)));
    }
    const std::vector<uint32_t> values = UnpackBits(words, bits);
    for (int o = 0; o < out; ++o) {
      q.zeros(g, o) = static_cast<int32_t>((values[static_cast<size_t>(o)] + 1) & maxq);
    }
  }
  return q;
}

}  // namespace caliber
