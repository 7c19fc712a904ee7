// The last step of a job: the quantized layers the workers left in the scratch prefix become a
// checkpoint in the output location. Layers are read back (CRC-checked) and written by the same
// writer `caliber quantize` uses (GPTQ v1 for W·A16, compressed-tensors for W·A8; see
// core/formats/checkpoint_format.h), so the bytes are the same; the optional
// evaluation runs on exactly what was written; then every file is uploaded, config.json
// second to last and the manifest (caliber_manifest.json: names, sizes, SHA-256) last — a
// reader that finds the manifest finds a complete checkpoint.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "caliber/v1/coordinator_state.pb.h"
#include "core/model/config.h"
#include "services/storage/storage.h"

namespace caliber::coordinator {

inline constexpr char kManifestName[] = "caliber_manifest.json";

struct AssemblyHooks {
  std::function<void(const std::string& phase)> on_phase;  // assembling | evaluating | committing
  // Called before the first upload: persist that the commit started (or refuse, e.g. when
  // the job was cancelled meanwhile).
  std::function<absl::Status()> before_commit;
};

absl::StatusOr<v1::QualityReport> AssembleCheckpoint(storage::Storage& storage,
                                                     const v1::JobRecord& record,
                                                     const ModelConfig& config,
                                                     const std::string& cache_dir,
                                                     const AssemblyHooks& hooks);

// Whether `output_uri` holds (part of) a checkpoint already.
absl::StatusOr<bool> OutputExists(storage::Storage& storage, const std::string& output_uri);

}  // namespace caliber::coordinator
