// Runs one stage assignment: a contiguous range of decoder layers of one job. Loads only those
// layers' tensors (ranged reads), gets the activations entering the range (embedding the
// calibration tokens, reading a stored boundary, or receiving the upstream worker's stream),
// quantizes layer by layer with core's QuantizeLayerRange — the same code `caliber quantize`
// runs — and after each layer stores its result (and, at checkpoints, the activations after
// it) before reporting it, so a replacement worker resumes without redoing finished layers.
// Pipelined jobs first forward the unquantized range and hand the stage's output downstream,
// so every stage calibrates concurrently.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "caliber/v1/worker_protocol.grpc.pb.h"
#include "services/metrics/worker_metrics.h"
#include "services/storage/storage.h"
#include "workers/activation_inbox.h"

namespace caliber::workers {

struct StageContext {
  storage::Storage* storage = nullptr;
  ActivationInbox* inbox = nullptr;
  metrics::WorkerMetrics* metrics = nullptr;  // may be null
  std::string work_dir;                       // local scratch (the model's sparse mirror)
  std::string worker_id;
  // Reports to the coordinator (retried by the caller's implementation).
  std::function<absl::StatusOr<v1::ReportAck>(const v1::ReportLayerDoneRequest&)> report_layer;
  std::function<absl::StatusOr<v1::ReportAck>(const v1::ReportBoundaryReadyRequest&)> report_boundary;
  // The stored input's URI once the coordinator announced it ("" until then).
  std::function<std::string()> input_ready;
  // A channel to another worker, for activation pushes; and the token to present.
  std::function<std::shared_ptr<grpc::Channel>(const std::string& address)> channel_to;
  std::string push_token;
  const std::atomic<bool>* cancelled = nullptr;
};

absl::Status RunStage(const v1::StageAssignment& assignment, const StageContext& context);

}  // namespace caliber::workers
