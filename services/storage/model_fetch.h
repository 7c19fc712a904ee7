// Mirrors a Hugging Face model directory from object storage to local disk, reading only what
// is needed: config.json, the shard index, and for every shard its header plus the byte ranges
// of the wanted tensors (ranged GETs). Shards are written as sparse files of their full size
// — unread tensors are holes that take no disk — so the ordinary memory-mapped Checkpoint
// reader (with all its validation) works on them unchanged.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "services/storage/storage.h"

namespace caliber::storage {

struct ModelFetchOptions {
  // Which tensors to download; null: none (headers only, enough to validate the tensor set).
  std::function<bool(std::string_view tensor)> want;
  bool tokenizer = false;  // also tokenizer.model/json, tokenizer_config.json, special_tokens_map.json, generation_config.json
  int64_t max_header_bytes = 100 << 20;
};

struct ModelFetchStats {
  int64_t bytes_read = 0;
  int requests = 0;
};

absl::StatusOr<ModelFetchStats> FetchModel(Storage& storage, std::string_view model_uri,
                                           const std::string& local_dir,
                                           const ModelFetchOptions& options);

// The tensors of decoder layers [first, end) (and the embeddings if `embeddings`).
std::function<bool(std::string_view)> LayerTensors(int first, int end, bool embeddings);

}  // namespace caliber::storage
