// Getting a job ready to calibrate: the model mirrored into the coordinator's cache (it
// assembles the checkpoint from it and evaluates), the calibration text tokenized and its
// segments drawn, and the segments' token ids put in the job's scratch prefix for the stage
// that embeds them.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "caliber/v1/coordinator_state.pb.h"
#include "core/model/config.h"
#include "services/storage/storage.h"

namespace caliber::coordinator {

// Where a job's things live: the local model mirror and the calibration draw's object.
std::string ModelCacheDir(const std::string& cache_dir);
// Jobs with a transform: the transformed model, written by the coordinator after the
// transform phase (and fetched back from the scratch prefix if a restart lost it).
std::string TransformedModelCacheDir(const std::string& cache_dir);
std::string CalibTokensUri(const v1::JobRecord& record);

// Sets record.calib_tokens_uri on success. Errors carry the precise cause (model corrupt,
// calibration too short for nsamples x seq_len, ...).
absl::StatusOr<ModelConfig> PrepareJob(storage::Storage& storage, v1::JobRecord& record,
                                       const std::string& cache_dir);

// Validates the model at `model_uri` by reading only config.json and the shards' headers.
absl::StatusOr<ModelConfig> InspectModel(storage::Storage& storage, const std::string& model_uri,
                                         const std::string& scratch_dir);

// Token ids from a data object (format as in CalibrationData), tokenized with the cached model.
absl::StatusOr<std::vector<int32_t>> LoadDataTokens(storage::Storage& storage,
                                                    const std::string& uri,
                                                    const std::string& format,
                                                    const std::string& model_dir,
                                                    const std::string& local_path, int vocab_size);

}  // namespace caliber::coordinator
