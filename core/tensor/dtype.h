// Element types of checkpoint tensors and conversions between them and float32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace caliber {

enum class DType : uint8_t { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// Safetensors spelling ("F32", "BF16", ...). Unknown names are an InvalidArgument error.
absl::StatusOr<DType> ParseDType(std::string_view name);
std::string_view DTypeName(DType dtype);
size_t DTypeSize(DType dtype);
bool IsFloatingPoint(DType dtype);

// Bit-exact IEEE conversions. Float-to-half rounds to nearest even (as PyTorch does).
float BF16ToFloat(uint16_t bits);
uint16_t FloatToBF16(float value);
float F16ToFloat(uint16_t bits);
uint16_t FloatToF16(float value);

// Decodes `count` little-endian elements of `dtype` from `bytes` into `out` (float32).
// `bytes` must hold count * DTypeSize(dtype) bytes; integer types convert by value.
void ConvertToFloat(DType dtype, const uint8_t* bytes, size_t count, float* out);
// Encodes float32 values as `dtype` (F32, F16 or BF16; also F64, exactly) little-endian bytes;
// `out` must hold values.size() * DTypeSize(dtype) bytes. Integer dtypes round half away from
// zero and saturate (NaN -> 0); BOOL stores value != 0. Every input is well defined.
void ConvertFromFloat(DType dtype, absl::Span<const float> values, uint8_t* out);

}  // namespace caliber
