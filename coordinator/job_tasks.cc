// JobManager's job threads: preparation (model and calibration data), the transform fold,
// checkpoint assembly, and the cleanup of a job's scratch. They run without the lock while they
// do I/O and take it to record what they did.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "coordinator/checkpoint_assembler.h"
#include "coordinator/job_manager.h"
#include "coordinator/job_manager_internal.h"
#include "coordinator/job_preparer.h"
#include "core/transform/model_transform.h"
#include "core/transform/stage_transform.h"
#include "core/transform/transform_codec.h"
#include "services/job_options.h"
#include "services/scratch_layout.h"

namespace caliber::coordinator {
namespace fs = std::filesystem;

void JobManager::RunCleanup(v1::JobRecord record, CleanupScope scope) {
  // Scratch objects are deleted by name (no listing: some S3 deployments refuse prefix lists).
  std::vector<std::string> uris;
  if (!record.calib_tokens_uri().empty()) uris.push_back(record.calib_tokens_uri());
  for (const v1::LayerRecord& l : record.layers()) {
    if (!l.result_uri().empty()) uris.push_back(l.result_uri());
    if (!l.activations_uri().empty()) uris.push_back(l.activations_uri());
  }
  for (const std::string& uri : record.scratch_objects()) uris.push_back(uri);
  for (const std::string& uri : uris) (void)storage_.Delete(uri);
  // Then whatever else is under the prefix (a write the record never heard of: a cancelled
  // stage's last layer, a failed upload). Stores that refuse prefix listings keep only those.
  if (!record.scratch_uri().empty()) {
    absl::StatusOr<std::vector<std::string>> left = storage_.List(record.scratch_uri() + "/");
    if (left.ok()) {
      for (const std::string& uri : *left) (void)storage_.Delete(uri);
    }
    (void)storage_.RemoveEmptyPrefix(record.scratch_uri() + "/");
  }
  // A failed or cancelled commit leaves no partial output behind. Only right after the job
  // ended: later the output location may belong to a newer job.
  if (scope == CleanupScope::kScratchAndPartialOutput && record.job().state() != v1::SUCCEEDED &&
      record.commit().started()) {
    (void)storage_.Delete(storage::JoinUri(record.job().spec().output_uri(), kManifestName));
    (void)storage_.Delete(storage::JoinUri(record.job().spec().output_uri(), "config.json"));
    absl::StatusOr<std::vector<std::string>> left = storage_.List(record.job().spec().output_uri() + "/");
    if (left.ok()) {
      for (const std::string& uri : *left) (void)storage_.Delete(uri);
    }
    (void)storage_.RemoveEmptyPrefix(record.job().spec().output_uri() + "/");
  }
  std::error_code ec;
  fs::remove_all(CacheDir(record.job().job_id()), ec);
}

bool JobManager::EndedWhileBusy(Job& job) {
  job.busy = false;
  if (!IsTerminal(job.record.job().state())) return false;
  SpawnCleanup(job.record, CleanupScope::kScratchAndPartialOutput);
  return true;
}

void JobManager::RunPreparation(std::string job_id) {
  v1::JobRecord record;
  {
    absl::MutexLock lock(&mu_);
    record = jobs_.at(job_id).record;
  }
  absl::StatusOr<ModelConfig> config = PrepareJob(storage_, record, CacheDir(job_id));
  absl::MutexLock lock(&mu_);
  Job& job = jobs_.at(job_id);
  job.record.set_calib_tokens_uri(record.calib_tokens_uri());
  if (EndedWhileBusy(job)) return;
  if (!config.ok()) {
    FailJob(job, config.status());
    return;
  }
  job.config = *config;
  job.prepared = true;
  if (job.record.job().stages_size() == 0) {
    PlanAndAssign(job);
  } else {
    job.record.mutable_job()->set_phase(InTransformPhase(job) ? "learning transform" : "calibrating");
    (void)Changed(job);  // the scheduler reassigns the stages of a recovered job
  }
}

void JobManager::RunTransformFold(std::string job_id) {
  v1::JobRecord record;
  ModelConfig config;
  std::map<int, std::string> results;
  {
    absl::MutexLock lock(&mu_);
    Job& job = jobs_.at(job_id);
    record = job.record;
    config = job.config;
    results = job.transform_results;
  }
  const std::string cache = CacheDir(job_id);
  const std::string out_dir = TransformedModelCacheDir(cache);
  std::vector<std::string> uploaded;
  auto fold = [&]() -> absl::Status {
    absl::StatusOr<TransformOptions> options = TransformOptionsFromProto(record.job().spec().method());
    if (!options.ok()) return options.status();
    std::vector<StageTransform> stages;
    std::vector<nlohmann::json> parts;
    for (const auto& [stage, uri] : results) {
      absl::StatusOr<std::string> bytes = storage_.Read(uri);
      if (!bytes.ok()) return bytes.status();
      absl::StatusOr<StageTransform> t = DecodeStageTransform(*bytes, config);
      if (!t.ok()) return t.status();
      parts.push_back(t->report);
      stages.push_back(*std::move(t));
    }
    absl::StatusOr<ModelTransform> transform = AssembleModelTransform(config, stages);
    if (!transform.ok()) return transform.status();
    const std::string model_dir = ModelCacheDir(cache);
    absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(model_dir);
    if (!checkpoint.ok()) return checkpoint.status();
    std::error_code ec;
    fs::remove_all(out_dir, ec);
    if (absl::Status s = WriteTransformedModel(model_dir, config, **checkpoint, *transform, out_dir); !s.ok()) return s;
    const std::string model_uri = scratch::TransformedModelUri(record.scratch_uri());
    for (const auto& entry : fs::directory_iterator(out_dir)) {
      if (!entry.is_regular_file()) continue;
      const std::string uri = storage::JoinUri(model_uri, entry.path().filename().string());
      if (absl::Status s = storage_.WriteFile(uri, entry.path().string()); !s.ok()) return s;
      uploaded.push_back(uri);
    }
    const std::string report_uri = scratch::TransformReportUri(record.scratch_uri());
    if (absl::Status s = storage_.Write(report_uri, MergeTransformReports(*options, parts).dump() + "\n"); !s.ok()) {
      return s;
    }
    uploaded.push_back(report_uri);
    return absl::OkStatus();
  };
  const absl::Status status = fold();
  absl::StatusOr<ModelConfig> transformed =
      status.ok() ? ModelConfig::FromFile((fs::path(out_dir) / "config.json").string()) : absl::StatusOr<ModelConfig>(status);
  absl::MutexLock lock(&mu_);
  Job& job = jobs_.at(job_id);
  for (const std::string& uri : uploaded) job.record.add_scratch_objects(uri);
  if (EndedWhileBusy(job)) return;
  if (!transformed.ok()) {
    FailJob(job, transformed.status());
    return;
  }
  job.record.set_transformed_model_uri(scratch::TransformedModelUri(job.record.scratch_uri()));
  job.record.set_transform_report_uri(scratch::TransformReportUri(job.record.scratch_uri()));
  job.record.mutable_job()->set_phase("calibrating");
  // Not durable: still in the transform phase with every stage's result, so the scheduler
  // folds again later.
  if (!Changed(job).ok()) return;
  job.config = *transformed;
  job.transform_results.clear();
  job.transform_boundaries.clear();
  job.rounds.clear();
  for (int stage = 0; stage < job.record.job().stages_size(); ++stage) AssignStage(job, stage);
}

void JobManager::RunAssembly(std::string job_id) {
  v1::JobRecord record;
  ModelConfig config;
  {
    absl::MutexLock lock(&mu_);
    Job& job = jobs_.at(job_id);
    record = job.record;
    config = job.config;
  }
  AssemblyHooks hooks;
  hooks.on_phase = [&](const std::string& phase) {
    absl::MutexLock lock(&mu_);
    Job& job = jobs_.at(job_id);
    job.record.mutable_job()->set_phase(phase);
    (void)Changed(job);  // progress text only
  };
  hooks.before_commit = [&]() -> absl::Status {
    absl::MutexLock lock(&mu_);
    Job& job = jobs_.at(job_id);
    if (job.record.job().state() != v1::RUNNING) return absl::CancelledError("job ended before commit");
    if (!job.record.commit().started()) {
      absl::StatusOr<bool> exists = OutputExists(storage_, job.record.job().spec().output_uri());
      if (!exists.ok()) return exists.status();
      if (*exists) {
        return absl::AlreadyExistsError(absl::StrCat("output ", job.record.job().spec().output_uri(),
                                                     " appeared while the job ran"));
      }
      job.record.mutable_commit()->set_started(true);
      // Output is written only once a restart would know to clean it up.
      if (absl::Status s = Changed(job); !s.ok()) return s;
    }
    return absl::OkStatus();
  };
  absl::StatusOr<v1::QualityReport> quality = AssembleCheckpoint(storage_, record, config, CacheDir(job_id), hooks);
  absl::MutexLock lock(&mu_);
  Job& job = jobs_.at(job_id);
  if (EndedWhileBusy(job)) return;
  if (!quality.ok()) {
    FailJob(job, quality.status());
    return;
  }
  EndOrRetry(job, PendingEnd{v1::SUCCEEDED, absl::OkStatus(), *quality});
}

}  // namespace caliber::coordinator
