#include "core/formats/compressed_tensors_pack.h"

#include <bit>

#include "absl/strings/str_format.h"
#include "core/quant/quant_grid.h"

namespace caliber {
namespace {

bool SupportedBits(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

int PackFactor(int bits) { return 32 / bits; }

Eigen::Index PackedLength(Eigen::Index n, int bits) {
  return (n + PackFactor(bits) - 1) / PackFactor(bits);
}

// The group of column i in plain column order.
int PlainGroup(int i, int group_size) { return group_size <= 0 ? 0 : i / group_size; }

}  // namespace

std::vector<uint32_t> PackInt32(absl::Span<const uint32_t> fields, int bits) {
  const size_t f = static_cast<size_t>(PackFactor(bits));
  std::vector<uint32_t> words((fields.size() + f - 1) / f, 0u);
  const uint32_t mask = (1u << bits) - 1;
  for (size_t k = 0; k < fields.size(); ++k) {
    words[k / f] |= (fields[k] & mask) << ((k % f) * static_cast<size_t>(bits));
  }
  return words;
}

std::vector<uint32_t> UnpackInt32(absl::Span<const uint32_t> words, int bits, size_t count) {
  const size_t f = static_cast<size_t>(PackFactor(bits));
  std::vector<uint32_t> fields(count);
  const uint32_t mask = (1u << bits) - 1;
  for (size_t k = 0; k < count; ++k) {
    fields[k] = (words[k / f] >> ((k % f) * static_cast<size_t>(bits))) & mask;
  }
  return fields;
}

absl::StatusOr<CompressedTensorsTensors> PackCompressedTensors(const QuantizedLinear& q,
                                                               bool store_g_idx) {
  const int bits = q.bits;
  const int out = q.out_features;
  const int in = q.in_features;
  if (!SupportedBits(bits)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "compressed-tensors packing supports 2, 3, 4 or 8 bits, got %d", bits));
  }
  if (out <= 0 || in <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("compressed-tensors packing: empty layer [%d x %d]", out, in));
  }
  if (q.group_size != -1 && (q.group_size <= 0 || in % q.group_size != 0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "compressed-tensors stores groups of equal size: group_size %d does not divide "
        "in_features %d",
        q.group_size, in));
  }
  const int groups = q.num_groups();
  const int want_groups = q.group_size == -1 ? 1 : in / q.group_size;
  if (groups != want_groups || q.codes.rows() != out || q.codes.cols() != in ||
      q.scales.cols() != out || q.zeros.rows() != groups || q.zeros.cols() != out ||
      static_cast<int>(q.g_idx.size()) != in) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "compressed-tensors packing: inconsistent layer [%d x %d], group_size %d: codes %dx%d, "
        "scales %dx%d, zeros %dx%d, g_idx %d",
        out, in, q.group_size, q.codes.rows(), q.codes.cols(), q.scales.rows(), q.scales.cols(),
        q.zeros.rows(), q.zeros.cols(), q.g_idx.size()));
  }
  const uint32_t maxq = static_cast<uint32_t>(MaxQ(bits));
  if (q.codes.maxCoeff() > maxq) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "compressed-tensors packing: a code exceeds %d for %d bits", maxq, bits));
  }
  if (q.zeros.minCoeff() < 0 || q.zeros.maxCoeff() > static_cast<int32_t>(maxq)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "compressed-tensors packing: zeros must lie in [0, %d] for %d bits", maxq, bits));
  }
  const int32_t sym_zero = int32_t{1} << (bits - 1);
  if (q.sym && (q.zeros.array() != sym_zero).any()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "compressed-tensors packing: a symmetric layer needs every zero point at %d (the format "
        "stores none)",
        sym_zero));
  }
  std::vector<int> group_count(static_cast<size_t>(groups), 0);
  for (int i = 0; i < in; ++i) {
    const int g = q.g_idx[static_cast<size_t>(i)];
    if (g < 0 || g >= groups) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "compressed-tensors packing: g_idx[%d] = %d is outside [0, %d)", i, g, groups));
    }
    if (!store_g_idx && g != PlainGroup(i, q.group_size)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "compressed-tensors packing: g_idx[%d] = %d is not column order (%d) and the "
          "checkpoint stores no weight_g_idx (actorder \"group\" does)",
          i, g, PlainGroup(i, q.group_size)));
    }
    ++group_count[static_cast<size_t>(g)];
  }
  for (int g = 0; g < groups; ++g) {
    if (group_count[static_cast<size_t>(g)] != in / groups) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "compressed-tensors packing: group %d has %d columns, not %d: the format needs equal "
          "groups",
          g, group_count[static_cast<size_t>(g)], in / groups));
    }
  }

  CompressedTensorsTensors t;
  t.bits = bits;
  t.group_size = q.group_size;
  t.weight_shape = {out, in};
  t.weight_scale = q.scales.transpose();
  if (store_g_idx) t.weight_g_idx = q.g_idx;
  t.weight_packed.resize(out, PackedLength(in, bits));
  std::vector<uint32_t> fields(static_cast<size_t>(in));
  for (int o = 0; o < out; ++o) {
    for (int i = 0; i < in; ++i) fields[static_cast<size_t>(i)] = q.codes(o, i);
    const std::vector<uint32_t> words = PackInt32(fields, bits);
    for (size_t w = 0; w < words.size(); ++w) {
      t.weight_packed(o, static_cast<Eigen::Index>(w)) = std::bit_cast<int32_t>(words[w]);
    }
  }
  if (!q.sym) {
    // pack_to_int32(zero_point, packed_dim=0): each group's column of zero points is packed
    // along the output dimension.
    t.weight_zero_point.resize(PackedLength(out, bits), groups);
    fields.resize(static_cast<size_t>(out));
    for (int g = 0; g < groups; ++g) {
      for (int o = 0; o < out; ++o) fields[static_cast<size_t>(o)] = static_cast<uint32_t>(q.zeros(g, o));
      const std::vector<uint32_t> words = PackInt32(fields, bits);
      for (size_t w = 0; w < words.size(); ++w) {
        t.weight_zero_point(static_cast<Eigen::Index>(w), g) = std::bit_cast<int32_t>(words[w]);
      }
    }
  }
  return t;
}

absl::StatusOr<QuantizedLinear> UnpackCompressedTensors(const CompressedTensorsTensors& t, bool sym) {
  const int bits = t.bits;
  if (!SupportedBits(bits)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "compressed-tensors unpacking supports 2, 3, 4 or 8 bits, got %d", bits));
  }
  const int64_t out = t.weight_shape[0];
  const int64_t in = t.weight_shape[1];
  if (out <= 0 || in <= 0 || out > (int64_t{1} << 30) || in > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "compressed-tensors unpacking: weight_shape [%d, %d] is not a valid layer shape", out, in));
  }
  if (t.group_size != -1 && (t.group_size <= 0 || in % t.group_size != 0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "compressed-tensors unpacking: group_size %d does not divide in_features %d",
        t.group_size, in));
  }
  const int groups = t.group_size == -1 ? 1 : static_cast<int>(in / t.group_size);
  const bool has_g_idx = !t.weight_g_idx.empty();
  if (t.weight_packed.rows() != out || t.weight_packed.cols() != PackedLength(in, bits) ||
      t.weight_scale.rows() != out || t.weight_scale.cols() != groups ||
      (has_g_idx && static_cast<int64_t>(t.weight_g_idx.size()) != in) ||
      (sym ? t.weight_zero_point.size() != 0
           : (t.weight_zero_point.rows() != PackedLength(out, bits) ||
              t.weight_zero_point.cols() != groups))) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "compressed-tensors unpacking: inconsistent %d-bit tensors for [%d x %d] with %d groups: "
        "weight_packed %dx%d, weight_scale %dx%d, weight_zero_point %dx%d, weight_g_idx %d",
        bits, out, in, groups, t.weight_packed.rows(), t.weight_packed.cols(),
        t.weight_scale.rows(), t.weight_scale.cols(), t.weight_zero_point.rows(),
        t.weight_zero_point.cols(), t.weight_g_idx.size()));
  }
  QuantizedLinear q;
  q.out_features = static_cast<int>(out);
  q.in_features = static_cast<int>(in);
  q.bits = bits;
  q.group_size = t.group_size;
  q.sym = sym;
  q.scales = t.weight_scale.transpose();
  q.g_idx.resize(static_cast<size_t>(in));
  for (int i = 0; i < q.in_features; ++i) {
    const int g = has_g_idx ? t.weight_g_idx[static_cast<size_t>(i)] : PlainGroup(i, t.group_size);
    if (g < 0 || g >= groups) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "compressed-tensors unpacking: weight_g_idx[%d] = %d is outside [0, %d)", i, g, groups));
    }
    q.g_idx[static_cast<size_t>(i)] = g;
  }
  q.codes.resize(q.out_features, q.in_features);
  std::vector<uint32_t> words(static_cast<size_t>(t.weight_packed.cols()));
  for (int o = 0; o < q.out_features; ++o) {
    for (size_t w = 0; w < words.size(); ++w) {
      words[w] = std::bit_cast<uint32_t>(t.weight_packed(o, static_cast<Eigen::Index>(w)));
    }
    const std::vector<uint32_t> fields = UnpackInt32(words, bits, static_cast<size_t>(in));
    for (int i = 0; i < q.in_features; ++i) q.codes(o, i) = static_cast<uint8_t>(fields[static_cast<size_t>(i)]);
  }
  q.zeros.resize(groups, q.out_features);
  if (sym) {
    q.zeros.setConstant(int32_t{1} << (bits - 1));
  } else {
    words.resize(static_cast<size_t>(t.weight_zero_point.rows()));
    for (int g = 0; g < groups; ++g) {
      for (size_t w = 0; w < words.size(); ++w) {
        words[w] = std::bit_cast<uint32_t>(t.weight_zero_point(static_cast<Eigen::Index>(w), g));
      }
      const std::vector<uint32_t> fields = UnpackInt32(words, bits, static_cast<size_t>(out));
      for (int o = 0; o < q.out_features; ++o) q.zeros(g, o) = static_cast<int32_t>(fields[static_cast<size_t>(o)]);
    }
  }
  return q;
}

}  // namespace caliber
