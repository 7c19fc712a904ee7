// Safetensors files (https://github.com/huggingface/safetensors): a little-endian u64 header
// length, a JSON header mapping tensor names to {dtype, shape, data_offsets}, then the data.
// The reader treats every file as hostile: each structural violation is an absl::Status naming
// the file, the tensor and the problem. Files are memory-mapped, never copied whole.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/tensor/dtype.h"

namespace caliber {

// Largest header accepted (the reference implementation uses the same 100 MB bound).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;

  int64_t numel() const;  // 1 for a scalar; -1 if the product overflows (never once parsed)
  uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by begin offset
  std::map<std::string, std::string> metadata;
};

// Parses and validates a header. `data_size` is the byte length of the data section that
// follows it; `label` (usually the file path) prefixes every error message. Checks: valid JSON
// object, known dtypes, non-negative shapes without overflow, shape x dtype size == byte range,
// ranges inside the data section, non-overlapping, and (as the format requires) covering it
// without holes. Exposed separately so object-store readers and the fuzzer can use it.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::string_view header_json,
                                                         uint64_t data_size,
                                                         std::string_view label);

// Splits a whole file image (u64 header length, header, data) and parses its header with the
// checks above: exactly what SafetensorsFile::Open does to a mapped file. A file too short for
// its length prefix or its declared header is a DataLoss error; header length 0 or above
// kMaxSafetensorsHeaderBytes is InvalidArgument.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsImage(absl::Span<const uint8_t> file,
                                                        std::string_view label);

// One memory-mapped safetensors file. Like any mapping, it must not be truncated by another
// process while open (reads past the new end would fault).
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* Find(std::string_view name) const;  // nullptr when absent
  // Raw little-endian bytes of a tensor of this file.
  absl::Span<const uint8_t> Bytes(const TensorInfo& info) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  SafetensorsHeader header_;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section inside the mapping
};

// A Hugging Face checkpoint directory: `model.safetensors`, or shards listed by
// `model.safetensors.index.json` (weight_map: tensor name -> shard file). Open fails with
// NotFound when neither exists (or a shard is missing) and InvalidArgument when the index and
// the shards disagree: a mapped tensor absent from its shard, a name in two shards, a shard
// name that is not a plain file name.
class Checkpoint {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool Contains(std::string_view name) const;
  std::vector<std::string> TensorNames() const;  // sorted
  absl::StatusOr<const TensorInfo*> Info(std::string_view name) const;
  // Decodes a floating-point tensor to float32 (row-major, as stored). Fails on NaN or Inf
  // values, naming the tensor and the first bad index. `expected_shape`, when non-empty, must
  // match exactly.
  absl::StatusOr<std::vector<float>> ReadFloat(std::string_view name,
                                               absl::Span<const int64_t> expected_shape = {}) const;
  // Raw bytes of any tensor (for copying tensors through unchanged).
  absl::StatusOr<absl::Span<const uint8_t>> Bytes(std::string_view name) const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<const SafetensorsFile*, const TensorInfo*>, std::less<>> index_;
};

// Builds a safetensors file in memory and writes it atomically (temp file + rename).
class SafetensorsWriter {
 public:
  // Copies `bytes`; its size must equal numel(shape) * DTypeSize(dtype). Names must be unique.
  absl::Status Add(std::string name, DType dtype, std::vector<int64_t> shape,
                   absl::Span<const uint8_t> bytes);
  // Encodes float32 values as `dtype` (F32/F16/BF16, or F64); other dtypes are InvalidArgument.
  absl::Status AddFloat(std::string name, DType dtype, std::vector<int64_t> shape,
                        absl::Span<const float> values);
  // Invalid UTF-8 in metadata is written as U+FFFD (tensor names are validated by Add).
  void SetMetadata(std::string key, std::string value);
  // Header JSON + data, tensors in insertion order, header padded with spaces to 8 bytes.
  std::string Serialize() const;
  absl::Status WriteFile(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  std::string SerializeHeader() const;  // length prefix + JSON padded to 8 bytes
  std::vector<Entry> entries_;
  std::set<std::string, std::less<>> names_;  // of entries_, for the uniqueness check
  std::map<std::string, std::string> metadata_;
};

}  // namespace caliber
