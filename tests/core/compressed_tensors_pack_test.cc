// compressed-tensors pack-quantized packing (core/formats/compressed_tensors_pack.h) against an
// independent unpacker written from compressed-tensors' unpack_from_int32 (for each field index
// i < 32/bits: unpacked[:, i::f] = (packed >> (bits·i)) & mask, minus the offset 2^(bits-1) to
// get the signed int8 value), plus pack_to_int32's own docstring example; 3-bit words keep their
// top 2 bits zero; zero points are packed along the output dimension; the layer round trip
// (sym, asym, act-order g_idx) is exact; what the format cannot hold is refused precisely.
#include "core/formats/compressed_tensors_pack.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace caliber {
namespace {

using ::testing::HasSubstr;

// unpack_from_int32 for packed_dim=1 of one row: signed int8 values, padding dropped.
std::vector<int> IndependentUnpackRow(const std::vector<int32_t>& packed, int bits, int count) {
  const int f = 32 / bits;
  const int64_t mask = (int64_t{1} << bits) - 1;
  std::vector<int> out(packed.size() * f, 0);
  for (int i = 0; i < f; ++i) {
    for (size_t w = 0; w < packed.size(); ++w) {
      // Arithmetic on the int32 as torch does (>> on a negative int32 sign-extends; the mask
      // drops the extension).
      out[w * f + i] = static_cast<int>((static_cast<int64_t>(packed[w]) >> (bits * i)) & mask);
    }
  }
  out.resize(count);
  for (int& v : out) v -= 1 << (bits - 1);
  return out;
}

QuantizedLinear RandomLayer(int out, int in, int bits, int group_size, bool sym, bool permuted,
                            uint32_t seed) {
  std::mt19937 rng(seed);
  QuantizedLinear q;
  q.out_features = out;
  q.in_features = in;
  q.bits = bits;
  q.group_size = group_size;
  q.sym = sym;
  const int groups = group_size == -1 ? 1 : in / group_size;
  std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
  std::uniform_real_distribution<float> scale(1e-3f, 1e-1f);
  q.codes.resize(out, in);
  for (Eigen::Index k = 0; k < q.codes.size(); ++k) q.codes.data()[k] = static_cast<uint8_t>(code(rng));
  q.scales.resize(groups, out);
  for (Eigen::Index k = 0; k < q.scales.size(); ++k) q.scales.data()[k] = scale(rng);
  q.zeros.resize(groups, out);
  for (Eigen::Index k = 0; k < q.zeros.size(); ++k) q.zeros.data()[k] = sym ? 1 << (bits - 1) : code(rng);
  std::vector<int> perm(in);
  for (int i = 0; i < in; ++i) perm[i] = i;
  if (permuted) std::shuffle(perm.begin(), perm.end(), rng);
  q.g_idx.resize(in);
  // As GPTQ act-order assigns them: column perm[p] is the p-th quantized, group p / group_size.
  for (int p = 0; p < in; ++p) q.g_idx[perm[p]] = group_size == -1 ? 0 : p / group_size;
  return q;
}

TEST(CompressedTensorsPack, DocstringExample) {
  // pack_to_int32 docstring: num_bits 8, values [1, 2] -> [129, 130] -> 33409.
  EXPECT_EQ(PackInt32(std::vector<uint32_t>{129, 130}, 8), std::vector<uint32_t>{33409});
  // 4 bits: signed -8..7 are fields 0..15; eight per word, lowest first.
  const std::vector<uint32_t> fields = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  EXPECT_EQ(PackInt32(fields, 4), (std::vector<uint32_t>{0x76543210u, 0xFEDCBA98u}));
}

TEST(CompressedTensorsPack, RowsMatchTheIndependentUnpackerForAllWidths) {
  std::mt19937 rng(11);
  for (const int bits : {2, 3, 4, 8}) {
    for (const int n : {1, 7, 10, 32, 33, 100, 256}) {
      std::uniform_int_distribution<uint32_t> field(0, (1u << bits) - 1);
      std::vector<uint32_t> fields(static_cast<size_t>(n));
      for (uint32_t& v : fields) v = field(rng);
      const std::vector<uint32_t> words = PackInt32(fields, bits);
      const int f = 32 / bits;
      ASSERT_EQ(words.size(), static_cast<size_t>((n + f - 1) / f)) << bits << " " << n;
      std::vector<int32_t> as_int(words.size());
      for (size_t w = 0; w < words.size(); ++w) as_int[w] = static_cast<int32_t>(words[w]);
      const std::vector<int> got = IndependentUnpackRow(as_int, bits, n);
      for (int k = 0; k < n; ++k) {
        ASSERT_EQ(got[k], static_cast<int>(fields[k]) - (1 << (bits - 1))) << bits << " " << n << " " << k;
      }
      EXPECT_EQ(UnpackInt32(words, bits, fields.size()), fields);
      // Padding fields are zero, and a 3-bit word's top 2 bits too.
      for (size_t w = 0; w < words.size(); ++w) {
        const size_t used = std::min<size_t>(f, fields.size() - w * f);
        if (used * bits < 32) {
          EXPECT_EQ(words[w] >> (used * bits), 0u) << bits << " " << n << " " << w;
        }
      }
    }
  }
}

TEST(CompressedTensorsPack, LayerTensorsMatchTheIndependentUnpacker) {
  struct Case {
    int bits, group_size;
    bool sym, g_idx;
  };
  for (const Case c : {Case{4, 128, true, false}, Case{4, 64, false, false}, Case{4, 32, true, true},
                       Case{3, 64, false, true}, Case{8, -1, true, false}, Case{2, 32, false, false}}) {
    const int out = 40, in = 256;  // out not a multiple of 32/bits for 3 and 4 bits' zero packing
    const QuantizedLinear q = RandomLayer(out, in, c.bits, c.group_size, c.sym, c.g_idx, 5);
    absl::StatusOr<CompressedTensorsTensors> t = PackCompressedTensors(q, c.g_idx);
    ASSERT_TRUE(t.ok()) << t.status();
    const int f = 32 / c.bits;
    const int groups = c.group_size == -1 ? 1 : in / c.group_size;
    ASSERT_EQ(t->weight_packed.rows(), out);
    ASSERT_EQ(t->weight_packed.cols(), (in + f - 1) / f);
    EXPECT_EQ(t->weight_shape[0], out);
    EXPECT_EQ(t->weight_shape[1], in);
    ASSERT_EQ(t->weight_scale.rows(), out);
    ASSERT_EQ(t->weight_scale.cols(), groups);
    for (int o = 0; o < out; ++o) {
      std::vector<int32_t> row(t->weight_packed.cols());
      for (size_t w = 0; w < row.size(); ++w) row[w] = t->weight_packed(o, static_cast<Eigen::Index>(w));
      const std::vector<int> signed_codes = IndependentUnpackRow(row, c.bits, in);
      for (int i = 0; i < in; ++i) {
        ASSERT_EQ(signed_codes[i] + (1 << (c.bits - 1)), q.codes(o, i)) << o << " " << i;
      }
      for (int g = 0; g < groups; ++g) EXPECT_EQ(t->weight_scale(o, g), q.scales(g, o));
    }
    if (c.sym) {
      EXPECT_EQ(t->weight_zero_point.size(), 0);
    } else {
      // packed_dim=0: transpose, pack each group's column along the output dim, transpose back.
      ASSERT_EQ(t->weight_zero_point.rows(), (out + f - 1) / f);
      ASSERT_EQ(t->weight_zero_point.cols(), groups);
      for (int g = 0; g < groups; ++g) {
        std::vector<int32_t> col(t->weight_zero_point.rows());
        for (size_t w = 0; w < col.size(); ++w) col[w] = t->weight_zero_point(static_cast<Eigen::Index>(w), g);
        const std::vector<int> zp = IndependentUnpackRow(col, c.bits, out);
        for (int o = 0; o < out; ++o) ASSERT_EQ(zp[o] + (1 << (c.bits - 1)), q.zeros(g, o)) << g << " " << o;
      }
    }
    if (c.g_idx) {
      EXPECT_EQ(t->weight_g_idx, q.g_idx);
    } else {
      EXPECT_TRUE(t->weight_g_idx.empty());
    }
    // Dequantization as compressed-tensors computes it, (q - zp) · scale, equals Caliber's Q.
    const MatrixF want = q.Dequantize();
    absl::StatusOr<QuantizedLinear> back = UnpackCompressedTensors(*t, c.sym);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(back->codes == q.codes);
    EXPECT_TRUE(back->zeros == q.zeros);
    EXPECT_TRUE(back->scales == q.scales);
    EXPECT_EQ(back->g_idx, q.g_idx);
    EXPECT_TRUE(back->Dequantize() == want);
  }
}

TEST(CompressedTensorsPack, RefusesWhatTheFormatCannotHold) {
  // Groups must divide in_features (compressed-tensors reshapes columns into equal groups).
  QuantizedLinear q = RandomLayer(8, 96, 4, 32, true, false, 1);
  q.group_size = 64;  // 96 % 64 != 0
  q.scales.resize(2, 8);
  q.zeros.setConstant(2, 8, 8);
  for (int i = 0; i < 96; ++i) q.g_idx[i] = i / 64;
  absl::Status s = PackCompressedTensors(q, false).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("group_size 64 does not divide in_features 96"));

  // An act-order g_idx without weight_g_idx.
  q = RandomLayer(8, 128, 4, 32, true, true, 2);
  s = PackCompressedTensors(q, false).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("is not column order"));
  EXPECT_TRUE(PackCompressedTensors(q, true).ok());

  // Unequal groups.
  q.g_idx[0] = (q.g_idx[0] + 1) % 4;
  s = PackCompressedTensors(q, true).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("the format needs equal groups"));

  // A symmetric layer whose zero point is not 2^(bits-1).
  q = RandomLayer(8, 64, 4, 32, true, false, 3);
  q.zeros(1, 3) = 7;
  s = PackCompressedTensors(q, false).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("symmetric layer needs every zero point at 8"));

  q = RandomLayer(8, 64, 5, 32, true, false, 3);
  EXPECT_THAT(PackCompressedTensors(q, false).status().message(), HasSubstr("2, 3, 4 or 8 bits, got 5"));

  // Unpacking checks the shapes against weight_shape.
  absl::StatusOr<CompressedTensorsTensors> t = PackCompressedTensors(RandomLayer(8, 64, 4, 32, false, false, 4), false);
  ASSERT_TRUE(t.ok());
  CompressedTensorsTensors bad = *t;
  bad.weight_shape = {8, 72};
  EXPECT_EQ(UnpackCompressedTensors(bad, false).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(UnpackCompressedTensors(*t, true).status().code(), absl::StatusCode::kInvalidArgument)
      << "zero points present but the config says symmetric";
  bad = *t;
  bad.weight_g_idx.assign(64, 0);
  bad.weight_g_idx[5] = 2;
  EXPECT_THAT(UnpackCompressedTensors(bad, false).status().message(),
              HasSubstr("weight_g_idx[5] = 2 is outside [0, 2)"));
}

}  // namespace
}  // namespace caliber
