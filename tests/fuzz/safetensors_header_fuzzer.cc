// libFuzzer target: the input is a whole safetensors file image (u64 header length, JSON
// header, data), parsed exactly as SafetensorsFile::Open parses a mapped file. Beyond "no
// crash, no sanitizer report", accepted headers must satisfy the documented invariants and
// survive a SafetensorsWriter round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/io/safetensors.h"
#include "core/tensor/dtype.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();  // reported by libFuzzer as a crash with the input saved
}

// Sorted, contiguous, shape-consistent ranges that exactly tile the data section.
void CheckInvariants(const caliber::SafetensorsHeader& header, uint64_t data_size) {
  uint64_t covered = 0;
  for (const caliber::TensorInfo& info : header.tensors) {
    Check(info.begin == covered && info.begin <= info.end);
    Check(info.numel() >= 0);
    Check(static_cast<uint64_t>(info.numel()) * caliber::DTypeSize(info.dtype) == info.nbytes());
    covered = info.end;
  }
  Check(covered == data_size);
}

bool SameHeader(const caliber::SafetensorsHeader& a, const caliber::SafetensorsHeader& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const caliber::TensorInfo& x = a.tensors[i];
    const caliber::TensorInfo& y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.begin != y.begin ||
        x.end != y.end) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::Span<const uint8_t> file(data, size);
  absl::StatusOr<caliber::SafetensorsHeader> header =
      caliber::ParseSafetensorsImage(file, "fuzz.safetensors");
  if (!header.ok()) {
    Check(!header.status().message().empty());
    return 0;
  }
  uint64_t header_size = 0;
  __builtin_memcpy(&header_size, data, sizeof(header_size));
  const uint8_t* data_section = data + 8 + header_size;
  const uint64_t data_size = size - 8 - header_size;
  CheckInvariants(*header, data_size);

  // Decode every tensor (ASan checks the ranges really lie inside the input) and rewrite the
  // file: the writer lays tensors out in the same begin order, so the offsets must agree.
  caliber::SafetensorsWriter writer;
  for (const auto& [key, value] : header->metadata) writer.SetMetadata(key, value);
  for (const caliber::TensorInfo& info : header->tensors) {
    const uint8_t* bytes = data_section + info.begin;
    std::vector<float> values(static_cast<size_t>(info.numel()));
    caliber::ConvertToFloat(info.dtype, bytes, values.size(), values.data());
    Check(writer.Add(info.name, info.dtype, info.shape, {bytes, info.nbytes()}).ok());
  }
  const std::string rewritten = writer.Serialize();
  absl::StatusOr<caliber::SafetensorsHeader> reparsed = caliber::ParseSafetensorsImage(
      {reinterpret_cast<const uint8_t*>(rewritten.data()), rewritten.size()}, "rewritten");
  Check(reparsed.ok() && SameHeader(*header, *reparsed));
  return 0;
}
