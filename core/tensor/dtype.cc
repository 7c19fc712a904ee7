#include "core/tensor/dtype.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace caliber {
namespace {

// Safetensors stores little-endian data and we read it with memcpy.
static_assert(std::endian::native == std::endian::little, "big-endian hosts are not supported");

struct DTypeEntry {
  DType dtype;
  std::string_view name;
  size_t size;
  bool floating;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kF64, "F64", 8, true},  {DType::kF32, "F32", 4, true},
    {DType::kF16, "F16", 2, true},  {DType::kBF16, "BF16", 2, true},
    {DType::kI64, "I64", 8, false}, {DType::kI32, "I32", 4, false},
    {DType::kI16, "I16", 2, false}, {DType::kI8, "I8", 1, false},
    {DType::kU8, "U8", 1, false},   {DType::kBool, "BOOL", 1, false},
};

const DTypeEntry& Entry(DType dtype) {
  for (const DTypeEntry& entry : kDTypes) {
    if (entry.dtype == dtype) return entry;
  }
  return kDTypes[1];  // unreachable for valid enumerators; F32 keeps callers memory-safe
}

template <typename T>
T Load(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

template <typename T>
void Store(T value, uint8_t* p) {
  std::memcpy(p, &value, sizeof(T));
}

template <typename T>
void DecodeAs(const uint8_t* bytes, size_t count, float* out) {
  for (size_t i = 0; i < count; ++i) out[i] = static_cast<float>(Load<T>(bytes + i * sizeof(T)));
}

// Integer encoding: round half away from zero, saturate, NaN -> 0, so every input is defined.
template <typename T>
T SaturatingCast(float value) {
  if (std::isnan(value)) return 0;
  const double rounded = std::round(static_cast<double>(value));
  if (rounded <= static_cast<double>(std::numeric_limits<T>::min())) {
    return std::numeric_limits<T>::min();
  }
  if (rounded >= static_cast<double>(std::numeric_limits<T>::max())) {
    return std::numeric_limits<T>::max();
  }
  return static_cast<T>(rounded);
}

template <typename T>
void EncodeInt(absl::Span<const float> values, uint8_t* out) {
  for (size_t i = 0; i < values.size(); ++i) Store(SaturatingCast<T>(values[i]), out + i * sizeof(T));
}

}  // namespace

absl::StatusOr<DType> ParseDType(std::string_view name) {
  for (const DTypeEntry& entry : kDTypes) {
    if (entry.name == name) return entry.dtype;
  }
  // Hostile headers may carry huge strings; keep the message bounded.
  constexpr size_t kMaxShown = 64;
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown dtype '%s'%s", name.substr(0, kMaxShown), name.size() > kMaxShown ? "..." : ""));
}

std::string_view DTypeName(DType dtype) { return Entry(dtype).name; }
size_t DTypeSize(DType dtype) { return Entry(dtype).size; }
bool IsFloatingPoint(DType dtype) { return Entry(dtype).floating; }

float BF16ToFloat(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

uint16_t FloatToBF16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if (std::isnan(value)) {
    // Truncation could clear every payload bit (turning NaN into Inf): force the quiet bit.
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  // Round to nearest even; a carry out of the mantissa correctly bumps the exponent (to Inf
  // at the top of the range).
  const uint32_t rounding_bias = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

float F16ToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  const uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0x1F) {  // Inf / NaN (payload kept)
    return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));
  }
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13));
}

uint16_t FloatToF16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;

  if (abs_bits > 0x7F800000u) {  // NaN: quiet, keep the top payload bits
    return static_cast<uint16_t>(sign | 0x7E00u | ((abs_bits >> 13) & 0x3FFu));
  }
  // 65520 is halfway between the largest half (65504) and 2^16; the tie goes to the even
  // neighbour, which is Inf.
  if (abs_bits >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);

  if (abs_bits < 0x38800000u) {  // below 2^-14: half subnormal (or zero)
    const uint32_t float_exponent = abs_bits >> 23;
    const uint32_t shift = 126 - float_exponent;  // value = significand >> shift, in 2^-24 units
    if (float_exponent == 0 || shift > 24) return sign;  // below half the smallest subnormal
    const uint32_t significand = (abs_bits & 0x7FFFFFu) | 0x800000u;
    uint32_t half = significand >> shift;
    const uint32_t remainder = significand & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (remainder > halfway || (remainder == halfway && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);  // 0x400 (smallest normal) is encoded correctly
  }

  // Normal range: rebias the exponent, keep 10 mantissa bits, round to nearest even.
  uint32_t half = (abs_bits >> 13) - ((127u - 15u) << 10);
  const uint32_t remainder = abs_bits & 0x1FFFu;
  if (remainder > 0x1000u || (remainder == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);
}

void ConvertToFloat(DType dtype, const uint8_t* bytes, size_t count, float* out) {
  switch (dtype) {
    case DType::kF64:
      return DecodeAs<double>(bytes, count, out);
    case DType::kF32:
      if (count > 0) std::memcpy(out, bytes, count * sizeof(float));
      return;
    case DType::kF16:
      for (size_t i = 0; i < count; ++i) out[i] = F16ToFloat(Load<uint16_t>(bytes + 2 * i));
      return;
    case DType::kBF16:
      for (size_t i = 0; i < count; ++i) out[i] = BF16ToFloat(Load<uint16_t>(bytes + 2 * i));
      return;
    case DType::kI64:
      return DecodeAs<int64_t>(bytes, count, out);
    case DType::kI32:
      return DecodeAs<int32_t>(bytes, count, out);
    case DType::kI16:
      return DecodeAs<int16_t>(bytes, count, out);
    case DType::kI8:
      return DecodeAs<int8_t>(bytes, count, out);
    case DType::kU8:
      return DecodeAs<uint8_t>(bytes, count, out);
    case DType::kBool:
      // Any non-zero byte is true (numpy/torch only write 0 or 1).
      for (size_t i = 0; i < count; ++i) out[i] = bytes[i] != 0 ? 1.0f : 0.0f;
      return;
  }
}

void ConvertFromFloat(DType dtype, absl::Span<const float> values, uint8_t* out) {
  const size_t count = values.size();
  switch (dtype) {
    case DType::kF64:
      for (size_t i = 0; i < count; ++i) Store(static_cast<double>(values[i]), out + 8 * i);
      return;
    case DType::kF32:
      if (count > 0) std::memcpy(out, values.data(), count * sizeof(float));
      return;
    case DType::kF16:
      for (size_t i = 0; i < count; ++i) Store(FloatToF16(values[i]), out + 2 * i);
      return;
    case DType::kBF16:
      for (size_t i = 0; i < count; ++i) Store(FloatToBF16(values[i]), out + 2 * i);
      return;
    case DType::kI64:
      return EncodeInt<int64_t>(values, out);
    case DType::kI32:
      return EncodeInt<int32_t>(values, out);
    case DType::kI16:
      return EncodeInt<int16_t>(values, out);
    case DType::kI8:
      return EncodeInt<int8_t>(values, out);
    case DType::kU8:
      return EncodeInt<uint8_t>(values, out);
    case DType::kBool:
      for (size_t i = 0; i < count; ++i) out[i] = values[i] != 0.0f ? 1 : 0;  // NaN is true
      return;
  }
}

}  // namespace caliber
