// A stage's activations at its two ends: where the inputs of its first layer come from (the
// embedded calibration tokens, the upstream worker's stream, or a stored boundary) and how
// the outputs of its last layer reach the next stage (stored, then streamed best-effort).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "caliber/v1/worker_protocol.pb.h"
#include "core/io/safetensors.h"
#include "core/model/config.h"
#include "core/tensor/matrix.h"
#include "workers/stage_context.h"

namespace caliber::workers {

// A stage's local, sparse mirror of its model: layers [first, end) of a.model_uri() (and the
// embeddings when first == 0) in <work_dir>/<assignment_id>/model, removed with this object.
struct StageModel {
  StageModel() = default;
  StageModel(const StageModel&) = delete;
  StageModel& operator=(const StageModel&) = delete;
  ~StageModel();
  std::string dir;
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
};
absl::Status FetchStageModel(const v1::StageAssignment& a, const StageContext& ctx, int first, int end,
                             StageModel& out);

// The activations entering layer a.resume_from() (waits for the upstream stage).
absl::StatusOr<MatrixF> StageInput(const v1::StageAssignment& a, const StageContext& ctx,
                                   const ModelConfig& config, const Checkpoint& checkpoint);

// Stores `out` (the activations after layer a.end_layer() - 1) at `uri` and pushes it to the
// downstream worker, if any (a failed push is logged: the next stage reads the stored copy).
absl::Status HandOffBoundary(const v1::StageAssignment& a, const StageContext& ctx, const MatrixF& out,
                             const std::string& uri);
// The same, then tells the coordinator the boundary is stored (ReportBoundaryReady).
absl::Status HandOffAndReportBoundary(const v1::StageAssignment& a, const StageContext& ctx, const MatrixF& out,
                                      const std::string& uri);

}  // namespace caliber::workers
