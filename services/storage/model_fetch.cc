#include "services/storage/model_fetch.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/io/model_files.h"
#include "core/io/safetensors.h"
#include "nlohmann/json.hpp"
#include "services/storage/atomic_file.h"

namespace caliber::storage {
namespace fs = std::filesystem;
namespace {

// Local write errors keep their errno (a full disk is ResourceExhausted) and leave no file.
absl::Status WriteLocal(const fs::path& path, std::string_view data) {
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> out = AtomicFileWriter::Create(path.string());
  if (!out.ok()) return out.status();
  if (absl::Status s = (*out)->Append(data); !s.ok()) return s;
  return (*out)->Commit();
}

// One shard: header by ranged read, then the wanted tensors' bytes, merged into runs of
// adjacent ranges, written at their offsets into a sparse file of the shard's size.
absl::Status FetchShard(Storage& storage, const std::string& uri, const fs::path& local,
                        const ModelFetchOptions& options, ModelFetchStats& stats) {
  absl::StatusOr<int64_t> size = storage.Size(uri);
  if (!size.ok()) return size.status();
  if (*size < 8) return absl::DataLossError(absl::StrCat(uri, ": too short to be safetensors"));
  absl::StatusOr<std::string> prefix = storage.ReadRange(uri, 0, 8);
  if (!prefix.ok()) return prefix.status();
  uint64_t header_len = 0;
  std::memcpy(&header_len, prefix->data(), 8);
  if (header_len == 0 || header_len > static_cast<uint64_t>(options.max_header_bytes) ||
      8 + header_len > static_cast<uint64_t>(*size)) {
    return absl::DataLossError(absl::StrCat(uri, ": header length ", header_len,
                                            " does not fit the ", *size, "-byte object"));
  }
  absl::StatusOr<std::string> header = storage.ReadRange(uri, 8, static_cast<int64_t>(header_len));
  if (!header.ok()) return header.status();
  stats.requests += 2;
  stats.bytes_read += 8 + static_cast<int64_t>(header_len);
  const uint64_t data_start = 8 + header_len;
  absl::StatusOr<SafetensorsHeader> parsed =
      ParseSafetensorsHeader(*header, static_cast<uint64_t>(*size) - data_start, uri);
  if (!parsed.ok()) return parsed.status();

  const int fd = ::open(local.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("create ", local.string()));
  auto write_at = [&](uint64_t offset, std::string_view bytes) -> absl::Status {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done,
                                 static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::ErrnoToStatus(n < 0 ? errno : EIO, absl::StrCat("write ", local.string()));
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  };
  absl::Status status = write_at(0, *prefix);
  if (status.ok()) status = write_at(8, *header);
  if (status.ok() && ::ftruncate(fd, static_cast<off_t>(*size)) != 0) {
    status = absl::ErrnoToStatus(errno, absl::StrCat("size ", local.string()));
  }
  // Tensors are sorted by offset: coalesce adjacent wanted ones into one ranged read.
  uint64_t run_begin = 0, run_end = 0;
  auto flush = [&]() -> absl::Status {
    if (run_end <= run_begin) return absl::OkStatus();
    absl::StatusOr<std::string> bytes = storage.ReadRange(
        uri, static_cast<int64_t>(data_start + run_begin), static_cast<int64_t>(run_end - run_begin));
    if (!bytes.ok()) return bytes.status();
    stats.requests += 1;
    stats.bytes_read += static_cast<int64_t>(bytes->size());
    absl::Status s = write_at(data_start + run_begin, *bytes);
    run_begin = run_end = 0;
    return s;
  };
  for (const TensorInfo& t : parsed->tensors) {
    if (!status.ok()) break;
    if (!options.want || !options.want(t.name) || t.nbytes() == 0) continue;
    if (run_end > run_begin && t.begin == run_end) {
      run_end = t.end;
      continue;
    }
    status = flush();
    run_begin = t.begin;
    run_end = t.end;
  }
  if (status.ok()) status = flush();
  ::close(fd);
  if (!status.ok()) ::unlink(local.c_str());  // a partial shard is no cache entry
  return status;
}

}  // namespace

std::function<bool(std::string_view)> LayerTensors(int first, int end, bool embeddings) {
  return [first, end, embeddings](std::string_view name) {
    if (embeddings && name == "model.embed_tokens.weight") return true;
    constexpr std::string_view kLayers = "model.layers.";
    if (name.substr(0, kLayers.size()) != kLayers) return false;
    name.remove_prefix(kLayers.size());
    const size_t dot = name.find('.');
    int layer = -1;
    if (dot == std::string_view::npos || !absl::SimpleAtoi(std::string(name.substr(0, dot)), &layer)) {
      return false;
    }
    return layer >= first && layer < end;
  };
}

absl::StatusOr<ModelFetchStats> FetchModel(Storage& storage, std::string_view model_uri,
                                           const std::string& local_dir,
                                           const ModelFetchOptions& options) {
  std::error_code ec;
  fs::create_directories(local_dir, ec);
  if (ec) return absl::ErrnoToStatus(ec.value(), absl::StrCat("create ", local_dir));
  ModelFetchStats stats;
  absl::StatusOr<std::string> config = storage.Read(JoinUri(model_uri, "config.json"));
  if (!config.ok()) {
    if (absl::IsNotFound(config.status())) {
      return absl::NotFoundError(absl::StrCat("no model at ", std::string(model_uri), ": config.json not found"));
    }
    return config.status();
  }
  if (absl::Status s = WriteLocal(fs::path(local_dir) / "config.json", *config); !s.ok()) return s;

  // Shards: those the index names, else the single model.safetensors.
  std::set<std::string> shards;
  const std::string index_uri = JoinUri(model_uri, "model.safetensors.index.json");
  absl::StatusOr<std::string> index = storage.Read(index_uri);
  if (index.ok()) {
    const nlohmann::json j = nlohmann::json::parse(*index, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
      return absl::DataLossError(absl::StrCat(index_uri, ": not a safetensors index"));
    }
    for (const auto& [tensor, file] : j["weight_map"].items()) {
      if (!file.is_string()) return absl::DataLossError(absl::StrCat(index_uri, ": bad entry ", tensor));
      const std::string name = file.get<std::string>();
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
        return absl::DataLossError(absl::StrCat(index_uri, ": shard name '", name, "' is not a plain file name"));
      }
      shards.insert(name);
    }
    if (absl::Status s = WriteLocal(fs::path(local_dir) / "model.safetensors.index.json", *index); !s.ok()) {
      return s;
    }
  } else if (absl::IsNotFound(index.status())) {
    shards.insert("model.safetensors");
  } else {
    return index.status();
  }
  for (const std::string& shard : shards) {
    if (absl::Status s = FetchShard(storage, JoinUri(model_uri, shard), fs::path(local_dir) / shard,
                                    options, stats);
        !s.ok()) {
      return s;
    }
  }
  if (options.tokenizer) {
    for (const char* file : kTokenizerFiles) {
      absl::StatusOr<std::string> bytes = storage.Read(JoinUri(model_uri, file));
      if (absl::IsNotFound(bytes.status())) continue;
      if (!bytes.ok()) return bytes.status();
      stats.requests += 1;
      stats.bytes_read += static_cast<int64_t>(bytes->size());
      if (absl::Status s = WriteLocal(fs::path(local_dir) / file, *bytes); !s.ok()) return s;
    }
  }
  return stats;
}

}  // namespace caliber::storage
