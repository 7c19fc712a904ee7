#include "core/io/safetensors.h"
#include "core/util/json_depth.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace caliber {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::string_view kIndexFileName = "model.safetensors.index.json";
constexpr std::string_view kSingleFileName = "model.safetensors";
// A valid header nests three deep (root, entry, shape); the bound stops "[[[[..." headers
// from costing gigabytes of DOM before they are rejected.
constexpr int kMaxJsonDepth = 16;
// Index files list one line per tensor; even the largest checkpoints stay far below this.
constexpr size_t kMaxIndexBytes = 64 << 20;

// ---------------------------------------------------------------------------------------------
// Error messages. Names come from hostile files: bound their length and escape control bytes.

std::string Shown(std::string_view text) {
  constexpr size_t kMaxShown = 200;
  std::string shown = absl::CHexEscape(
      absl::string_view(text.data(), std::min(text.size(), kMaxShown)));
  if (text.size() > kMaxShown) shown += "...";
  return shown;
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  constexpr size_t kMaxDims = 8;
  const std::string more =
      shape.size() > kMaxDims ? absl::StrFormat(", ... (%d dims)", shape.size()) : "";
  return absl::StrFormat("[%s%s]", absl::StrJoin(shape.subspan(0, kMaxDims), ", "), more);
}

// Debian's abseil has its own absl::string_view, not convertible to std::string_view.
std::string_view Message(const absl::Status& status) {
  return {status.message().data(), status.message().size()};
}

absl::Status FileError(std::string_view label, std::string_view problem) {
  return absl::InvalidArgumentError(absl::StrFormat("%s: %s", label, problem));
}

absl::Status TensorError(std::string_view label, std::string_view name, std::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: tensor '%s': %s", label, Shown(name), problem));
}

// ---------------------------------------------------------------------------------------------
// JSON helpers (nlohmann is used without exceptions: only type-checked accessors below).

// Parses `text` as a JSON object. nlohmann silently keeps the last of duplicate keys, which
// would let a file say two things about one tensor, so duplicates are rejected.
absl::StatusOr<Json> ParseJsonObject(std::string_view text, std::string_view label,
                                     std::string_view what) {
  if (!JsonNestingWithin(text, kMaxJsonDepth)) {
    return FileError(label, absl::StrFormat("%s nests deeper than %d levels", what, kMaxJsonDepth));
  }
  std::vector<std::set<std::string, std::less<>>> open_objects;
  std::optional<std::string> duplicate;
  Json::parser_callback_t track_keys = [&](int /*depth*/, Json::parse_event_t event, Json& value) {
    if (event == Json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == Json::parse_event_t::object_end && !open_objects.empty()) {
      open_objects.pop_back();
    } else if (event == Json::parse_event_t::key && !open_objects.empty() && !duplicate) {
      const auto* key = value.get_ptr<const std::string*>();
      if (key != nullptr && !open_objects.back().insert(*key).second) duplicate = *key;
    }
    return true;
  };
  Json json = Json::parse(text.begin(), text.end(), track_keys, /*allow_exceptions=*/false);
  if (json.is_discarded()) return FileError(label, absl::StrFormat("%s is not valid JSON", what));
  if (!json.is_object()) {
    return FileError(label, absl::StrFormat("%s is a JSON %s, expected an object", what,
                                            json.type_name()));
  }
  if (duplicate) {
    return FileError(label, absl::StrFormat("%s has duplicate key '%s'", what, Shown(*duplicate)));
  }
  return json;
}

const Json* Member(const Json& object, std::string_view key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// A non-negative JSON integer. nlohmann stores non-negative literals as unsigned, except "-0".
absl::StatusOr<uint64_t> NonNegativeInteger(const Json& value, std::string_view what) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) {
    const auto signed_value = value.get<int64_t>();
    if (signed_value >= 0) return static_cast<uint64_t>(signed_value);
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is negative (%d)", what, signed_value));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("%s is a JSON %s, expected an integer", what, value.type_name()));
}

// ---------------------------------------------------------------------------------------------
// Header validation.

// numel(shape) * DTypeSize(dtype), rejecting negative dimensions and 64-bit overflow.
absl::StatusOr<uint64_t> ByteSize(absl::Span<const int64_t> shape, DType dtype) {
  uint64_t numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("negative dimension %d at index %d of shape", shape[i], i));
    }
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(shape[i]), &numel)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("shape %s overflows a 64-bit element count", ShapeString(shape)));
    }
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(numel, DTypeSize(dtype), &bytes)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "shape %s of %s overflows a 64-bit byte count", ShapeString(shape), DTypeName(dtype)));
  }
  return bytes;
}

absl::StatusOr<DType> ParseEntryDType(const Json& entry) {
  const Json* dtype = Member(entry, "dtype");
  if (dtype == nullptr) return absl::InvalidArgumentError("missing \"dtype\"");
  if (!dtype->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("\"dtype\" is a JSON %s, expected a string", dtype->type_name()));
  }
  return ParseDType(*dtype->get_ptr<const std::string*>());
}

absl::StatusOr<std::vector<int64_t>> ParseEntryShape(const Json& entry) {
  const Json* shape = Member(entry, "shape");
  if (shape == nullptr) return absl::InvalidArgumentError("missing \"shape\"");
  if (!shape->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("\"shape\" is a JSON %s, expected an array", shape->type_name()));
  }
  std::vector<int64_t> dims;
  dims.reserve(shape->size());
  for (const Json& dim : *shape) {
    const std::string what = absl::StrFormat("dimension %d of \"shape\"", dims.size());
    absl::StatusOr<uint64_t> value = NonNegativeInteger(dim, what);
    if (!value.ok()) return value.status();
    if (*value > static_cast<uint64_t>(INT64_MAX)) {
      return absl::InvalidArgumentError(absl::StrFormat("%s (%d) overflows int64", what, *value));
    }
    dims.push_back(static_cast<int64_t>(*value));
  }
  return dims;
}

absl::StatusOr<std::pair<uint64_t, uint64_t>> ParseEntryOffsets(const Json& entry) {
  const Json* offsets = Member(entry, "data_offsets");
  if (offsets == nullptr) return absl::InvalidArgumentError("missing \"data_offsets\"");
  if (!offsets->is_array() || offsets->size() != 2) {
    return absl::InvalidArgumentError("\"data_offsets\" must be an array [begin, end]");
  }
  absl::StatusOr<uint64_t> begin = NonNegativeInteger((*offsets)[0], "data_offsets begin");
  if (!begin.ok()) return begin.status();
  absl::StatusOr<uint64_t> end = NonNegativeInteger((*offsets)[1], "data_offsets end");
  if (!end.ok()) return end.status();
  if (*begin > *end) {
    return absl::InvalidArgumentError(
        absl::StrFormat("data_offsets [%d, %d] has begin after end", *begin, *end));
  }
  return std::make_pair(*begin, *end);
}

// One tensor entry: types, dtype, shape, and a byte range that fits the data section and
// matches the shape exactly.
absl::StatusOr<TensorInfo> ParseEntry(const std::string& name, const Json& entry,
                                      uint64_t data_size) {
  if (!entry.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("entry is a JSON %s, expected an object", entry.type_name()));
  }
  TensorInfo info;
  info.name = name;
  absl::StatusOr<DType> dtype = ParseEntryDType(entry);
  if (!dtype.ok()) return dtype.status();
  info.dtype = *dtype;
  absl::StatusOr<std::vector<int64_t>> shape = ParseEntryShape(entry);
  if (!shape.ok()) return shape.status();
  info.shape = *std::move(shape);
  absl::StatusOr<std::pair<uint64_t, uint64_t>> offsets = ParseEntryOffsets(entry);
  if (!offsets.ok()) return offsets.status();
  std::tie(info.begin, info.end) = *offsets;

  absl::StatusOr<uint64_t> expected_bytes = ByteSize(info.shape, info.dtype);
  if (!expected_bytes.ok()) return expected_bytes.status();
  if (info.end > data_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "data_offsets [%d, %d] extend beyond the %d-byte data section (truncated file or "
        "corrupt offsets)",
        info.begin, info.end, data_size));
  }
  if (info.nbytes() != *expected_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "data_offsets [%d, %d] span %d bytes but shape %s of %s needs %d bytes", info.begin,
        info.end, info.nbytes(), ShapeString(info.shape), DTypeName(info.dtype),
        *expected_bytes));
  }
  return info;
}

absl::StatusOr<std::map<std::string, std::string>> ParseMetadata(const Json& metadata) {
  if (!metadata.is_object()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "\"__metadata__\" is a JSON %s, expected an object of strings", metadata.type_name()));
  }
  std::map<std::string, std::string> result;
  for (auto it = metadata.begin(); it != metadata.end(); ++it) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("\"__metadata__\" value of key '%s' is a JSON %s, expected a string",
                          Shown(it.key()), it->type_name()));
    }
    result.emplace(it.key(), *it->get_ptr<const std::string*>());
  }
  return result;
}

// The format requires the (begin-sorted) ranges to tile the data section exactly.
absl::Status CheckCoverage(const std::vector<TensorInfo>& tensors, uint64_t data_size,
                           std::string_view label) {
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& info : tensors) {
    if (info.begin < covered) {
      return TensorError(label, info.name,
                         absl::StrFormat("data_offsets [%d, %d] overlap tensor '%s' [%d, %d]",
                                         info.begin, info.end, Shown(previous->name),
                                         previous->begin, previous->end));
    }
    if (info.begin > covered) {
      return TensorError(label, info.name,
                         absl::StrFormat("hole in the data section: bytes [%d, %d) before its "
                                         "data_offsets [%d, %d] belong to no tensor",
                                         covered, info.begin, info.begin, info.end));
    }
    covered = info.end;
    previous = &info;
  }
  if (covered != data_size) {
    return FileError(label, absl::StrFormat("hole in the data section: bytes [%d, %d) after the "
                                            "last tensor belong to no tensor",
                                            covered, data_size));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// File image layout.

struct ImageParts {
  std::string_view header_json;
  uint64_t data_offset = 0;  // from the start of the file
  uint64_t data_size = 0;
};

absl::StatusOr<ImageParts> SplitImage(absl::Span<const uint8_t> file, std::string_view label) {
  if (file.size() < 8) {
    return absl::DataLossError(absl::StrFormat(
        "%s: file is %d bytes, shorter than the 8-byte header length (truncated file)", label,
        file.size()));
  }
  uint64_t header_size = 0;
  std::memcpy(&header_size, file.data(), sizeof(header_size));  // little-endian host
  if (header_size == 0) return FileError(label, "header length is 0");
  if (header_size > kMaxSafetensorsHeaderBytes) {
    return FileError(label, absl::StrFormat("header length %d exceeds the %d-byte limit",
                                            header_size, kMaxSafetensorsHeaderBytes));
  }
  const uint64_t available = file.size() - 8;
  if (header_size > available) {
    return absl::DataLossError(absl::StrFormat(
        "%s: header length %d extends beyond the end of the %d-byte file (truncated file or "
        "corrupt header length)",
        label, header_size, file.size()));
  }
  return ImageParts{std::string_view(reinterpret_cast<const char*>(file.data()) + 8, header_size),
                    8 + header_size, available - header_size};
}

// ---------------------------------------------------------------------------------------------
// POSIX helpers.

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

absl::Status ErrnoError(int error, std::string_view what, std::string_view path) {
  return absl::ErrnoToStatus(error, absl::StrFormat("%s %s", what, path));
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  return absl::StrFormat("%s%s%s", dir, dir.back() == '/' ? "" : "/", name);
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "cannot open", path);
  FdCloser closer(fd);
  std::string text;
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "cannot read", path);
    if (n == 0) return text;
    if (text.size() + static_cast<size_t>(n) > max_bytes) {
      return FileError(path, absl::StrFormat("file is larger than %d bytes", max_bytes));
    }
    text.append(buffer, static_cast<size_t>(n));
  }
}

absl::Status WriteAll(int fd, std::string_view bytes, std::string_view path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "cannot write", path);
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Makes a rename durable. Best effort: some file systems refuse fsync on directories, and the
// data itself is already on disk.
void SyncDirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// ---------------------------------------------------------------------------------------------
// Checkpoint index.

// A shard named by the index must be a file in the checkpoint directory itself.
bool IsPlainFileName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string_view("/\0", 2)) == std::string_view::npos;
}

// weight_map of model.safetensors.index.json: tensor name -> shard file name.
absl::StatusOr<std::map<std::string, std::string>> ReadWeightMap(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, kMaxIndexBytes);
  if (!text.ok()) return text.status();
  absl::StatusOr<Json> index = ParseJsonObject(*text, path, "index");
  if (!index.ok()) return index.status();
  const Json* weight_map = Member(*index, "weight_map");
  if (weight_map == nullptr || !weight_map->is_object()) {
    return FileError(path, "\"weight_map\" is missing or not an object");
  }
  if (weight_map->empty()) return FileError(path, "\"weight_map\" is empty");
  std::map<std::string, std::string> result;
  for (auto it = weight_map->begin(); it != weight_map->end(); ++it) {
    const auto* shard = it->get_ptr<const std::string*>();
    if (shard == nullptr || !IsPlainFileName(*shard)) {
      return TensorError(path, it.key(),
                         "weight_map value must be the file name of a shard in the checkpoint "
                         "directory");
    }
    result.emplace(it.key(), *shard);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Writer helpers.

// UTF-8 check for tensor names: nlohmann::json::dump would otherwise throw on them.
bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    size_t extra = 0;
    uint32_t code_point = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      extra = 1;
      code_point = lead & 0x1Fu;
    } else if ((lead & 0xF0) == 0xE0) {
      extra = 2;
      code_point = lead & 0x0Fu;
    } else if ((lead & 0xF8) == 0xF0) {
      extra = 3;
      code_point = lead & 0x07u;
    } else {
      return false;
    }
    if (text.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (next & 0x3Fu);
    }
    constexpr uint32_t kSmallest[] = {0, 0x80, 0x800, 0x10000};  // shorter forms are overlong
    if (code_point < kSmallest[extra] || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t count = 1;
  for (const int64_t dim : shape) {
    if (__builtin_mul_overflow(count, dim, &count)) return -1;
  }
  return count;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(std::string_view header_json,
                                                         uint64_t data_size,
                                                         std::string_view label) {
  absl::StatusOr<Json> json = ParseJsonObject(header_json, label, "header");
  if (!json.ok()) return json.status();

  SafetensorsHeader header;
  header.tensors.reserve(json->size());
  for (auto it = json->begin(); it != json->end(); ++it) {
    if (it.key() == kMetadataKey) {
      absl::StatusOr<std::map<std::string, std::string>> metadata = ParseMetadata(*it);
      if (!metadata.ok()) return FileError(label, Message(metadata.status()));
      header.metadata = *std::move(metadata);
      continue;
    }
    if (it.key().empty()) return FileError(label, "tensor with an empty name");
    absl::StatusOr<TensorInfo> info = ParseEntry(it.key(), *it, data_size);
    if (!info.ok()) return TensorError(label, it.key(), Message(info.status()));
    header.tensors.push_back(*std::move(info));
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
            });
  if (absl::Status status = CheckCoverage(header.tensors, data_size, label); !status.ok()) {
    return status;
  }
  return header;
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsImage(absl::Span<const uint8_t> file,
                                                        std::string_view label) {
  absl::StatusOr<ImageParts> parts = SplitImage(file, label);
  if (!parts.ok()) return parts.status();
  return ParseSafetensorsHeader(parts->header_json, parts->data_size, label);
}

// ---------------------------------------------------------------------------------------------
// SafetensorsFile

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "cannot open", path);
  FdCloser closer(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError(errno, "cannot stat", path);
  if (!S_ISREG(st.st_mode)) return FileError(path, "not a regular file");

  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_size_ = static_cast<size_t>(st.st_size);
  if (file->map_size_ > 0) {  // mmap rejects length 0; SplitImage reports the empty file
    void* map = ::mmap(nullptr, file->map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) return ErrnoError(errno, "cannot mmap", path);
    file->map_ = static_cast<const uint8_t*>(map);
  }

  absl::StatusOr<ImageParts> parts = SplitImage({file->map_, file->map_size_}, path);
  if (!parts.ok()) return parts.status();
  absl::StatusOr<SafetensorsHeader> header =
      ParseSafetensorsHeader(parts->header_json, parts->data_size, path);
  if (!header.ok()) return header.status();
  file->header_ = *std::move(header);
  file->data_ = file->map_ + parts->data_offset;
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(const_cast<uint8_t*>(map_), map_size_);
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  for (const TensorInfo& info : header_.tensors) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

absl::Span<const uint8_t> SafetensorsFile::Bytes(const TensorInfo& info) const {
  return {data_ + info.begin, static_cast<size_t>(info.nbytes())};
}

// ---------------------------------------------------------------------------------------------
// Checkpoint

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  auto checkpoint = std::make_unique<Checkpoint>();
  checkpoint->dir_ = dir;
  const std::string index_path = JoinPath(dir, kIndexFileName);
  const std::string single_path = JoinPath(dir, kSingleFileName);

  // Shard file name -> opened file; the index names each shard many times.
  std::map<std::string, const SafetensorsFile*> shards;
  std::map<std::string, std::string> weight_map;
  if (PathExists(index_path)) {
    absl::StatusOr<std::map<std::string, std::string>> read = ReadWeightMap(index_path);
    if (!read.ok()) return read.status();
    weight_map = *std::move(read);
    for (const auto& [tensor, shard] : weight_map) shards.emplace(shard, nullptr);
  } else if (PathExists(single_path)) {
    shards.emplace(std::string(kSingleFileName), nullptr);
  } else {
    return absl::NotFoundError(absl::StrFormat("%s: no %s or %s in the checkpoint directory", dir,
                                               kSingleFileName, kIndexFileName));
  }

  for (auto& [shard, opened] : shards) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::Open(JoinPath(dir, shard));
    if (!file.ok()) return file.status();
    opened = file->get();
    for (const TensorInfo& info : opened->tensors()) {
      const auto [it, inserted] = checkpoint->index_.emplace(info.name, std::pair(opened, &info));
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: tensor '%s' appears in two shards, %s and %s", dir, Shown(info.name),
            it->second.first->path(), opened->path()));
      }
    }
    checkpoint->files_.push_back(*std::move(file));
  }

  for (const auto& [tensor, shard] : weight_map) {
    const SafetensorsFile* file = shards.find(shard)->second;  // every shard was opened above
    const auto found = checkpoint->index_.find(tensor);
    if (found == checkpoint->index_.end() || found->second.first != file) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: tensor '%s' is mapped to shard %s by %s but is missing from that shard", dir,
          Shown(tensor), file->path(), kIndexFileName));
    }
  }
  return checkpoint;
}

bool Checkpoint::Contains(std::string_view name) const { return index_.contains(name); }

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(index_.size());
  for (const auto& [name, location] : index_) names.push_back(name);
  return names;
}

absl::StatusOr<const TensorInfo*> Checkpoint::Info(std::string_view name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(
        absl::StrFormat("tensor '%s' not found in checkpoint %s", Shown(name), dir_));
  }
  return it->second.second;
}

absl::StatusOr<absl::Span<const uint8_t>> Checkpoint::Bytes(std::string_view name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) return Info(name).status();
  const auto& [file, info] = it->second;
  return file->Bytes(*info);
}

absl::StatusOr<std::vector<float>> Checkpoint::ReadFloat(
    std::string_view name, absl::Span<const int64_t> expected_shape) const {
  const auto it = index_.find(name);
  if (it == index_.end()) return Info(name).status();
  const auto& [file, info] = it->second;
  if (!IsFloatingPoint(info->dtype)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("tensor '%s' in %s has dtype %s, expected a floating-point dtype",
                        Shown(name), file->path(), DTypeName(info->dtype)));
  }
  if (!expected_shape.empty() && absl::Span<const int64_t>(info->shape) != expected_shape) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tensor '%s' in %s has shape %s, expected %s", Shown(name), file->path(),
        ShapeString(info->shape), ShapeString(expected_shape)));
  }
  const auto count = static_cast<size_t>(info->numel());
  std::vector<float> values(count);
  ConvertToFloat(info->dtype, file->Bytes(*info).data(), count, values.data());
  const auto bad = std::find_if(values.begin(), values.end(),
                                [](float v) { return !std::isfinite(v); });
  if (bad != values.end()) {
    const char* what = std::isnan(*bad) ? "nan" : (*bad > 0 ? "inf" : "-inf");
    return absl::InvalidArgumentError(
        absl::StrFormat("tensor '%s' in %s has non-finite value %s at flat index %d",
                        Shown(name), file->path(), what, bad - values.begin()));
  }
  return values;
}

// ---------------------------------------------------------------------------------------------
// SafetensorsWriter

absl::Status SafetensorsWriter::Add(std::string name, DType dtype, std::vector<int64_t> shape,
                                    absl::Span<const uint8_t> bytes) {
  const auto fail = [&](std::string_view problem) {
    return absl::InvalidArgumentError(
        absl::StrFormat("safetensors writer: tensor '%s': %s", Shown(name), problem));
  };
  if (name.empty()) return fail("empty name");
  if (name == kMetadataKey) return fail("name is reserved for metadata");
  if (!IsValidUtf8(name)) return fail("name is not valid UTF-8");
  if (names_.contains(name)) return fail("added twice");
  absl::StatusOr<uint64_t> expected_bytes = ByteSize(shape, dtype);
  if (!expected_bytes.ok()) return fail(Message(expected_bytes.status()));
  if (bytes.size() != *expected_bytes) {
    return fail(absl::StrFormat("got %d bytes but shape %s of %s needs %d", bytes.size(),
                                ShapeString(shape), DTypeName(dtype), *expected_bytes));
  }
  names_.insert(name);
  entries_.push_back(
      Entry{std::move(name), dtype, std::move(shape), std::string(bytes.begin(), bytes.end())});
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::AddFloat(std::string name, DType dtype, std::vector<int64_t> shape,
                                         absl::Span<const float> values) {
  if (!IsFloatingPoint(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("safetensors writer: tensor '%s': AddFloat needs a floating-point "
                        "dtype, got %s",
                        Shown(name), DTypeName(dtype)));
  }
  const TensorInfo info{.name = name, .dtype = dtype, .shape = shape};
  if (info.numel() < 0 || values.size() != static_cast<uint64_t>(info.numel())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "safetensors writer: tensor '%s': got %d values for shape %s", Shown(name),
        values.size(), ShapeString(shape)));
  }
  std::vector<uint8_t> bytes(values.size() * DTypeSize(dtype));
  ConvertFromFloat(dtype, values, bytes.data());
  return Add(std::move(name), dtype, std::move(shape), bytes);
}

void SafetensorsWriter::SetMetadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

std::string SafetensorsWriter::SerializeHeader() const {
  // ordered_json keeps insertion order: "__metadata__" first, then tensors as added.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json& metadata = header[std::string(kMetadataKey)];
    metadata = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata_) metadata[key] = value;
  }
  uint64_t offset = 0;
  for (const Entry& entry : entries_) {
    nlohmann::ordered_json info = nlohmann::ordered_json::object();
    info["dtype"] = DTypeName(entry.dtype);
    info["shape"] = entry.shape;
    info["data_offsets"] = nlohmann::ordered_json::array({offset, offset + entry.bytes.size()});
    header[entry.name] = std::move(info);
    offset += entry.bytes.size();
  }
  std::string json = header.dump(-1, ' ', /*ensure_ascii=*/false,
                                 nlohmann::ordered_json::error_handler_t::replace);
  json.append((8 - json.size() % 8) % 8, ' ');  // data section starts 8-byte aligned

  std::string out(8, '\0');
  const uint64_t size = json.size();
  std::memcpy(out.data(), &size, sizeof(size));  // little-endian host
  return out + json;
}

std::string SafetensorsWriter::Serialize() const {
  std::string out = SerializeHeader();
  for (const Entry& entry : entries_) out += entry.bytes;
  return out;
}

absl::Status SafetensorsWriter::WriteFile(const std::string& path) const {
  const std::string tmp_path = absl::StrFormat("%s.tmp.%d", path, ::getpid());
  const int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "cannot create", tmp_path);

  // Entries are written one by one so the file is never held twice in memory.
  absl::Status status = WriteAll(fd, SerializeHeader(), tmp_path);
  for (size_t i = 0; status.ok() && i < entries_.size(); ++i) {
    status = WriteAll(fd, entries_[i].bytes, tmp_path);
  }
  if (status.ok() && ::fsync(fd) != 0) status = ErrnoError(errno, "cannot fsync", tmp_path);
  if (::close(fd) != 0 && status.ok()) status = ErrnoError(errno, "cannot close", tmp_path);
  if (status.ok() && ::rename(tmp_path.c_str(), path.c_str()) != 0) {
    status = ErrnoError(errno, absl::StrFormat("cannot rename %s to", tmp_path), path);
  }
  if (!status.ok()) {
    ::unlink(tmp_path.c_str());
    return status;
  }
  SyncDirectoryOf(path);
  return absl::OkStatus();
}

}  // namespace caliber
