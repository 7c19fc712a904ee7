#include "coordinator/job_preparer.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/calib/calibration_set.h"
#include "core/calib/model_quantizer.h"
#include "core/io/inputs.h"
#include "core/io/safetensors.h"
#include "core/model/weights.h"
#include "services/scratch_layout.h"
#include "services/storage/model_fetch.h"

namespace caliber::coordinator {
namespace fs = std::filesystem;

std::string ModelCacheDir(const std::string& cache_dir) { return (fs::path(cache_dir) / "model").string(); }
std::string TransformedModelCacheDir(const std::string& cache_dir) {
  return (fs::path(cache_dir) / "transformed-model").string();
}

std::string CalibTokensUri(const v1::JobRecord& record) {
  return scratch::CalibTokensUri(record.scratch_uri());
}

absl::StatusOr<ModelConfig> InspectModel(storage::Storage& storage, const std::string& model_uri,
                                         const std::string& scratch_dir) {
  absl::StatusOr<storage::ModelFetchStats> fetched =
      storage::FetchModel(storage, model_uri, scratch_dir, {});
  if (!fetched.ok()) {
    if (absl::IsDataLoss(fetched.status()) || absl::IsInvalidArgument(fetched.status())) {
      return absl::InvalidArgumentError(absl::StrCat("model ", model_uri, " is corrupt: ",
                                                     std::string(fetched.status().message())));
    }
    return fetched.status();
  }
  absl::StatusOr<ModelConfig> config = ModelConfig::FromFile((fs::path(scratch_dir) / "config.json").string());
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model ", model_uri, ": ", std::string(config.status().message())));
  }
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(scratch_dir);
  absl::Status s = checkpoint.ok() ? ValidateTensorSet(*config, **checkpoint) : checkpoint.status();
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model ", model_uri, " is corrupt: ", std::string(s.message())));
  }
  return config;
}

absl::StatusOr<std::vector<int32_t>> LoadDataTokens(storage::Storage& storage,
                                                    const std::string& uri,
                                                    const std::string& format,
                                                    const std::string& model_dir,
                                                    const std::string& local_path, int vocab_size) {
  // Keep the object's extension: "auto" decides the format by it.
  const size_t slash = uri.find_last_of('/');
  const std::string base = uri.substr(slash == std::string::npos ? 0 : slash + 1);
  const std::string local = local_path + fs::path(base).extension().string();
  if (absl::Status s = storage.ReadToFile(uri, local); !s.ok()) return s;
  absl::StatusOr<std::vector<int32_t>> tokens = LoadTokens(local, format, false, model_dir, vocab_size);
  std::error_code ec;
  fs::remove(local, ec);
  if (!tokens.ok()) {
    return absl::Status(tokens.status().code(), absl::StrCat(uri, ": ", std::string(tokens.status().message())));
  }
  return tokens;
}

absl::StatusOr<ModelConfig> PrepareJob(storage::Storage& storage, v1::JobRecord& record,
                                       const std::string& cache_dir) {
  const v1::QuantJobSpec& spec = record.job().spec();
  const std::string model_dir = ModelCacheDir(cache_dir);
  storage::ModelFetchOptions all;
  all.want = [](std::string_view) { return true; };
  all.tokenizer = true;
  if (absl::StatusOr<storage::ModelFetchStats> f = storage::FetchModel(storage, spec.model_uri(), model_dir, all);
      !f.ok()) {
    return f.status();
  }
  absl::StatusOr<ModelConfig> config = ModelConfig::FromFile((fs::path(model_dir) / "config.json").string());
  if (!config.ok()) return config.status();

  const v1::CalibrationData& c = spec.calibration();
  absl::StatusOr<std::vector<int32_t>> stream = LoadDataTokens(
      storage, c.uri(), c.format(), model_dir, (fs::path(cache_dir) / "calib").string(), config->vocab_size);
  if (!stream.ok()) return stream.status();
  absl::StatusOr<CalibSampling> sampling = ParseCalibSampling(c.sampling());
  if (!sampling.ok()) return sampling.status();
  absl::StatusOr<CalibrationSet> calib =
      SelectCalibrationSegments(*stream, c.nsamples(), c.seq_len(), c.seed(), *sampling);
  if (!calib.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("calibration data ", c.uri(), ": ",
                                                   std::string(calib.status().message())));
  }
  if (absl::Status s = ValidateCalibrationSet(*config, *calib); !s.ok()) return s;
  const std::string bytes(reinterpret_cast<const char*>(calib->tokens.data()),
                          calib->tokens.size() * sizeof(int32_t));
  record.set_calib_tokens_uri(CalibTokensUri(record));
  if (absl::Status s = storage.Write(record.calib_tokens_uri(), bytes); !s.ok()) return s;
  return config;
}

}  // namespace caliber::coordinator
