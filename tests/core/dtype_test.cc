#include "core/tensor/dtype.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace caliber {
namespace {

using ::testing::HasSubstr;

float FloatFromBits(uint32_t bits) { return std::bit_cast<float>(bits); }
uint32_t BitsOf(float value) { return std::bit_cast<uint32_t>(value); }

bool IsF16NaN(uint16_t bits) { return (bits & 0x7C00) == 0x7C00 && (bits & 0x03FF) != 0; }
bool IsBF16NaN(uint16_t bits) { return (bits & 0x7F80) == 0x7F80 && (bits & 0x007F) != 0; }

// Slow, obviously-correct round-to-nearest-even into a 16-bit format, by searching the sorted
// table of its non-negative finite values. The table ends with the value the format's Inf
// would have if the exponent range went on (2^16 or 2^128): its bit pattern is even, so ties
// against the largest finite value overflow to Inf, as IEEE 754 specifies.
class ReferenceRounder {
 public:
  ReferenceRounder(uint16_t inf_bits, float (*decode)(uint16_t), double overflow_value) {
    for (uint32_t bits = 0; bits < inf_bits; ++bits) {
      values_.push_back(decode(static_cast<uint16_t>(bits)));
    }
    values_.push_back(overflow_value);
  }

  uint16_t Round(float value) const {
    const auto sign = static_cast<uint16_t>(std::signbit(value) ? 0x8000 : 0);
    const double magnitude = std::fabs(static_cast<double>(value));
    if (magnitude >= values_.back()) return sign | static_cast<uint16_t>(values_.size() - 1);
    // values_[hi - 1] <= magnitude < values_[hi]
    const size_t hi = std::upper_bound(values_.begin(), values_.end(), magnitude) - values_.begin();
    const size_t lo = hi - 1;
    const double below = magnitude - values_[lo];
    const double above = values_[hi] - magnitude;  // both exact: doubles hold these sums
    size_t pick = below < above ? lo : hi;
    if (below == above) pick = (lo % 2 == 0) ? lo : hi;
    return sign | static_cast<uint16_t>(pick);
  }

 private:
  std::vector<double> values_;
};

const ReferenceRounder& F16Reference() {
  static const ReferenceRounder rounder(0x7C00, &F16ToFloat, 65536.0);
  return rounder;
}
const ReferenceRounder& BF16Reference() {
  static const ReferenceRounder rounder(0x7F80, &BF16ToFloat, std::ldexp(1.0, 128));
  return rounder;
}

TEST(DTypeTest, ParsesEverySafetensorsName) {
  const std::vector<std::pair<std::string, DType>> names = {
      {"F64", DType::kF64}, {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16},
      {"I64", DType::kI64}, {"I32", DType::kI32}, {"I16", DType::kI16}, {"I8", DType::kI8},
      {"U8", DType::kU8},   {"BOOL", DType::kBool}};
  for (const auto& [name, dtype] : names) {
    absl::StatusOr<DType> parsed = ParseDType(name);
    ASSERT_TRUE(parsed.ok()) << name << ": " << parsed.status();
    EXPECT_EQ(*parsed, dtype);
    EXPECT_EQ(DTypeName(dtype), name);
  }
}

TEST(DTypeTest, RejectsUnknownNames) {
  for (const std::string name : {"F8_E4M3", "f32", "", "BF16 ", "U16", "bool"}) {
    absl::StatusOr<DType> parsed = ParseDType(name);
    ASSERT_FALSE(parsed.ok()) << name;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("unknown dtype '" + name + "'"));
  }
  // A hostile 1 MB name is not copied whole into the message.
  absl::StatusOr<DType> huge = ParseDType(std::string(1 << 20, 'X'));
  ASSERT_FALSE(huge.ok());
  EXPECT_LT(huge.status().message().size(), 200u);
}

TEST(DTypeTest, SizesAndKinds) {
  EXPECT_EQ(DTypeSize(DType::kF64), 8u);
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kI64), 8u);
  EXPECT_EQ(DTypeSize(DType::kI32), 4u);
  EXPECT_EQ(DTypeSize(DType::kI16), 2u);
  EXPECT_EQ(DTypeSize(DType::kI8), 1u);
  EXPECT_EQ(DTypeSize(DType::kU8), 1u);
  EXPECT_EQ(DTypeSize(DType::kBool), 1u);
  for (DType dtype : {DType::kF64, DType::kF32, DType::kF16, DType::kBF16}) {
    EXPECT_TRUE(IsFloatingPoint(dtype)) << DTypeName(dtype);
  }
  for (DType dtype : {DType::kI64, DType::kI32, DType::kI16, DType::kI8, DType::kU8, DType::kBool}) {
    EXPECT_FALSE(IsFloatingPoint(dtype)) << DTypeName(dtype);
  }
}

// ---- bfloat16 ------------------------------------------------------------------------------

TEST(DTypeTest, BF16ExhaustiveRoundTrip) {
  for (uint32_t i = 0; i <= 0xFFFF; ++i) {
    const auto bits = static_cast<uint16_t>(i);
    const float value = BF16ToFloat(bits);
    ASSERT_EQ(BitsOf(value), i << 16) << std::hex << i;  // bf16 is the top half of a float
    const uint16_t back = FloatToBF16(value);
    if (IsBF16NaN(bits)) {
      ASSERT_TRUE(IsBF16NaN(back)) << std::hex << i;
      ASSERT_EQ(back & 0x8000, bits & 0x8000) << std::hex << i;
      ASSERT_EQ(back, bits | 0x0040) << std::hex << i;  // payload kept, made quiet
    } else {
      ASSERT_EQ(back, bits) << std::hex << i;
    }
  }
}

TEST(DTypeTest, BF16KnownValues) {
  EXPECT_EQ(FloatToBF16(0.0f), 0x0000);
  EXPECT_EQ(FloatToBF16(-0.0f), 0x8000);
  EXPECT_EQ(FloatToBF16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBF16(-2.0f), 0xC000);
  EXPECT_EQ(FloatToBF16(3.14159265f), 0x4049);
  EXPECT_EQ(FloatToBF16(0.1f), 0x3DCD);  // 0x3DCCCCCD rounds up
  EXPECT_EQ(FloatToBF16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(FloatToBF16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(FloatToBF16(std::numeric_limits<float>::max()), 0x7F80);  // rounds to Inf
  EXPECT_EQ(FloatToBF16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(BF16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(BF16ToFloat(0xC2F7), -123.5f);
  EXPECT_TRUE(std::isnan(BF16ToFloat(0x7FC0)));
  EXPECT_EQ(FloatToBF16(std::numeric_limits<float>::quiet_NaN()), 0x7FC0);
  // A NaN whose payload sits only in the low 16 bits must not truncate to Inf.
  EXPECT_EQ(FloatToBF16(FloatFromBits(0x7F800001)), 0x7FC0);
  EXPECT_EQ(FloatToBF16(FloatFromBits(0xFF800001)), 0xFFC0);
}

TEST(DTypeTest, BF16RoundsTiesToEven) {
  EXPECT_EQ(FloatToBF16(FloatFromBits(0x3F808000)), 0x3F80);  // 1 + 2^-8: tie, down to even
  EXPECT_EQ(FloatToBF16(FloatFromBits(0x3F818000)), 0x3F82);  // tie, up to even
  EXPECT_EQ(FloatToBF16(FloatFromBits(0x3F808001)), 0x3F81);  // just above the tie
  EXPECT_EQ(FloatToBF16(FloatFromBits(0x3F817FFF)), 0x3F81);  // just below the tie
  EXPECT_EQ(FloatToBF16(FloatFromBits(0x3F7F8000)), 0x3F80);  // tie carries into the exponent
  EXPECT_EQ(FloatToBF16(FloatFromBits(0x7F7F8000)), 0x7F80);  // tie at the top: Inf (even)
  EXPECT_EQ(FloatToBF16(FloatFromBits(0x7F7F7FFF)), 0x7F7F);
  EXPECT_EQ(FloatToBF16(FloatFromBits(0x00018000)), 0x0002);  // subnormal tie, up to even
  EXPECT_EQ(FloatToBF16(FloatFromBits(0x80008000)), 0x8000);  // subnormal tie, down to -0
}

TEST(DTypeTest, BF16MatchesReferenceAtEveryTieAndSampledFloats) {
  const ReferenceRounder& reference = BF16Reference();
  for (uint32_t bf16 = 0; bf16 < 0x7F80; ++bf16) {
    for (uint32_t sign : {0u, 0x80000000u}) {
      const uint32_t tie = sign | (bf16 << 16) | 0x8000;
      for (uint32_t bits : {tie - 1, tie, tie + 1}) {
        ASSERT_EQ(FloatToBF16(FloatFromBits(bits)), reference.Round(FloatFromBits(bits)))
            << std::hex << bits;
      }
    }
  }
  for (uint64_t bits = 0; bits <= 0xFFFFFFFF; bits += 641) {  // ~6.7M floats, all exponents
    const float value = FloatFromBits(static_cast<uint32_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(FloatToBF16(value), reference.Round(value)) << std::hex << bits;
  }
}

// ---- float16 -------------------------------------------------------------------------------

// Independent decoding straight from the IEEE definition.
double F16Value(uint16_t bits) {
  const double sign = (bits & 0x8000) ? -1.0 : 1.0;
  const int exponent = (bits >> 10) & 0x1F;
  const int mantissa = bits & 0x3FF;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  if (exponent == 31) return sign * std::numeric_limits<double>::infinity();
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

TEST(DTypeTest, F16ExhaustiveRoundTrip) {
  for (uint32_t i = 0; i <= 0xFFFF; ++i) {
    const auto bits = static_cast<uint16_t>(i);
    const float value = F16ToFloat(bits);
    const uint16_t back = FloatToF16(value);
    if (IsF16NaN(bits)) {
      ASSERT_TRUE(std::isnan(value)) << std::hex << i;
      ASSERT_EQ(std::signbit(value), (bits & 0x8000) != 0) << std::hex << i;
      ASSERT_EQ(back, bits | 0x0200) << std::hex << i;  // payload kept, made quiet
    } else {
      ASSERT_EQ(static_cast<double>(value), F16Value(bits)) << std::hex << i;
      ASSERT_EQ(std::signbit(value), (bits & 0x8000) != 0) << std::hex << i;  // -0 included
      ASSERT_EQ(back, bits) << std::hex << i;
    }
  }
}

TEST(DTypeTest, F16KnownValues) {
  EXPECT_EQ(FloatToF16(0.0f), 0x0000);
  EXPECT_EQ(FloatToF16(-0.0f), 0x8000);
  EXPECT_EQ(FloatToF16(1.0f), 0x3C00);
  EXPECT_EQ(FloatToF16(-2.0f), 0xC000);
  EXPECT_EQ(FloatToF16(0.1f), 0x2E66);
  EXPECT_EQ(FloatToF16(65504.0f), 0x7BFF);                       // largest finite
  EXPECT_EQ(FloatToF16(65519.99f), 0x7BFF);                      // below the overflow tie
  EXPECT_EQ(FloatToF16(65520.0f), 0x7C00);                       // overflow tie goes to Inf
  EXPECT_EQ(FloatToF16(1e6f), 0x7C00);
  EXPECT_EQ(FloatToF16(-1e6f), 0xFC00);
  EXPECT_EQ(FloatToF16(std::numeric_limits<float>::max()), 0x7C00);
  EXPECT_EQ(FloatToF16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -14)), 0x0400);           // smallest normal
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -24)), 0x0001);           // smallest subnormal
  EXPECT_EQ(FloatToF16(std::ldexp(1.0f, -25)), 0x0000);           // tie to even: zero
  EXPECT_EQ(FloatToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(FloatToF16(-std::ldexp(1.0f, -26)), 0x8000);          // underflow keeps the sign
  EXPECT_EQ(FloatToF16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(F16ToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(F16ToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F16ToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(F16ToFloat(0x7E00)));
  EXPECT_EQ(FloatToF16(std::numeric_limits<float>::quiet_NaN()), 0x7E00);
  // Payload below the 10 kept bits: still NaN, not Inf.
  EXPECT_EQ(FloatToF16(FloatFromBits(0x7F800001)), 0x7E00);
}

TEST(DTypeTest, F16RoundsTiesToEven) {
  EXPECT_EQ(FloatToF16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie, down to even
  EXPECT_EQ(FloatToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie, up to even
  EXPECT_EQ(FloatToF16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3C01);
  EXPECT_EQ(FloatToF16(std::ldexp(2.5f, -24)), 0x0002);    // subnormal tie, down
  EXPECT_EQ(FloatToF16(std::ldexp(3.5f, -24)), 0x0004);    // subnormal tie, up
  EXPECT_EQ(FloatToF16(std::ldexp(1023.5f, -24)), 0x0400);  // largest subnormal rounds to normal
  EXPECT_EQ(FloatToF16(std::ldexp(2047.5f, -11)), 0x3C00);  // tie below 1.0: carry into exponent
  EXPECT_EQ(FloatToF16(std::ldexp(2047.0f, -10)), 0x3FFF);  // 2 - 2^-10, exact
}

TEST(DTypeTest, F16MatchesReferenceAtEveryTieAndSampledFloats) {
  const ReferenceRounder& reference = F16Reference();
  for (uint32_t half = 0; half < 0x7C00; ++half) {
    const double tie = (F16Value(static_cast<uint16_t>(half)) +
                        (half == 0x7BFF ? 65536.0 : F16Value(static_cast<uint16_t>(half + 1)))) /
                       2;
    for (float sign : {1.0f, -1.0f}) {
      const float at = sign * static_cast<float>(tie);  // exact: 12 significant bits
      for (float value : {std::nextafter(at, -INFINITY), at, std::nextafter(at, INFINITY)}) {
        ASSERT_EQ(FloatToF16(value), reference.Round(value)) << value;
      }
    }
  }
  for (uint64_t bits = 0; bits <= 0xFFFFFFFF; bits += 641) {
    const float value = FloatFromBits(static_cast<uint32_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(FloatToF16(value), reference.Round(value)) << std::hex << bits;
  }
}

// ---- bulk conversions ----------------------------------------------------------------------

template <typename T>
std::vector<uint8_t> Bytes(std::initializer_list<T> values, size_t misalign = 1) {
  std::vector<uint8_t> bytes(misalign + values.size() * sizeof(T));  // deliberately unaligned
  size_t offset = misalign;
  for (const T& value : values) {
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
    offset += sizeof(T);
  }
  return bytes;
}

std::vector<float> Decode(DType dtype, const std::vector<uint8_t>& bytes, size_t count) {
  std::vector<float> out(count);
  ConvertToFloat(dtype, bytes.data() + 1, count, out.data());
  return out;
}

TEST(DTypeTest, ConvertToFloatEveryDType) {
  using ::testing::ElementsAre;
  EXPECT_THAT(Decode(DType::kF64, Bytes<double>({1.5, -2.25, 1e300}), 3),
              ElementsAre(1.5f, -2.25f, std::numeric_limits<float>::infinity()));
  EXPECT_THAT(Decode(DType::kF32, Bytes<float>({0.5f, -7.0f}), 2), ElementsAre(0.5f, -7.0f));
  EXPECT_THAT(Decode(DType::kF16, Bytes<uint16_t>({0x3C00, 0xC000, 0x0001}), 3),
              ElementsAre(1.0f, -2.0f, std::ldexp(1.0f, -24)));
  EXPECT_THAT(Decode(DType::kBF16, Bytes<uint16_t>({0x3F80, 0xC2F7}), 2),
              ElementsAre(1.0f, -123.5f));
  EXPECT_THAT(Decode(DType::kI64, Bytes<int64_t>({-3, int64_t{1} << 40}), 2),
              ElementsAre(-3.0f, 1099511627776.0f));
  EXPECT_THAT(Decode(DType::kI32, Bytes<int32_t>({-2147483647 - 1, 7}), 2),
              ElementsAre(-2147483648.0f, 7.0f));
  EXPECT_THAT(Decode(DType::kI16, Bytes<int16_t>({-32768, 32767}), 2),
              ElementsAre(-32768.0f, 32767.0f));
  EXPECT_THAT(Decode(DType::kI8, Bytes<int8_t>({-128, 127}), 2), ElementsAre(-128.0f, 127.0f));
  EXPECT_THAT(Decode(DType::kU8, Bytes<uint8_t>({0, 255}), 2), ElementsAre(0.0f, 255.0f));
  EXPECT_THAT(Decode(DType::kBool, Bytes<uint8_t>({0, 1, 2}), 3), ElementsAre(0.0f, 1.0f, 1.0f));
}

template <typename T>
std::vector<T> Encode(DType dtype, std::vector<float> values) {
  std::vector<uint8_t> bytes(values.size() * DTypeSize(dtype));
  ConvertFromFloat(dtype, values, bytes.data());
  std::vector<T> out(values.size());
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

TEST(DTypeTest, ConvertFromFloatEveryDType) {
  using ::testing::ElementsAre;
  const std::vector<float> values = {1.0f, -2.5f, 0.1f, 70000.0f};
  EXPECT_THAT(Encode<float>(DType::kF32, values), ElementsAre(1.0f, -2.5f, 0.1f, 70000.0f));
  EXPECT_THAT(Encode<double>(DType::kF64, values),
              ElementsAre(1.0, -2.5, static_cast<double>(0.1f), 70000.0));
  EXPECT_THAT(Encode<uint16_t>(DType::kF16, values), ElementsAre(0x3C00, 0xC100, 0x2E66, 0x7C00));
  EXPECT_THAT(Encode<uint16_t>(DType::kBF16, values), ElementsAre(0x3F80, 0xC020, 0x3DCD, 0x4789));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> ints = {2.5f, -2.5f, 1e30f, -1e30f, nan, 0.49f};
  EXPECT_THAT(Encode<int64_t>(DType::kI64, ints),
              ElementsAre(3, -3, std::numeric_limits<int64_t>::max(),
                          std::numeric_limits<int64_t>::min(), 0, 0));
  EXPECT_THAT(Encode<int32_t>(DType::kI32, ints),
              ElementsAre(3, -3, std::numeric_limits<int32_t>::max(),
                          std::numeric_limits<int32_t>::min(), 0, 0));
  EXPECT_THAT(Encode<int16_t>(DType::kI16, ints), ElementsAre(3, -3, 32767, -32768, 0, 0));
  EXPECT_THAT(Encode<int8_t>(DType::kI8, ints), ElementsAre(3, -3, 127, -128, 0, 0));
  EXPECT_THAT(Encode<uint8_t>(DType::kU8, ints), ElementsAre(3, 0, 255, 0, 0, 0));
  EXPECT_THAT(Encode<uint8_t>(DType::kBool, {0.0f, -0.0f, 3.0f, nan}), ElementsAre(0, 0, 1, 1));
}

TEST(DTypeTest, HalfEncodingsMatchScalarConversions) {
  std::vector<float> values;
  for (uint64_t bits = 0; bits <= 0xFFFFFFFF; bits += 65537) {
    values.push_back(FloatFromBits(static_cast<uint32_t>(bits)));
  }
  const std::vector<uint16_t> f16 = Encode<uint16_t>(DType::kF16, values);
  const std::vector<uint16_t> bf16 = Encode<uint16_t>(DType::kBF16, values);
  for (size_t i = 0; i < values.size(); ++i) {
    ASSERT_EQ(f16[i], FloatToF16(values[i]));
    ASSERT_EQ(bf16[i], FloatToBF16(values[i]));
  }
}

}  // namespace
}  // namespace caliber
