// What a running stage assignment may use of its worker: storage, the activation inbox,
// metrics, local scratch, and the calls to the coordinator and to other workers.
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
  // A channel to a peer, or an error when one cannot be made with the configured TLS.
  std::function<absl::StatusOr<std::shared_ptr<grpc::Channel>>(const std::string& address)> channel_to;
  std::string push_token;
  // Transform phase: one learning round's share in, the job's sum out (one long poll).
  std::function<absl::StatusOr<v1::ReduceTransformShareResponse>(const v1::ReduceTransformShareRequest&)> reduce;
  const std::atomic<bool>* cancelled = nullptr;
};

inline bool Cancelled(const StageContext& ctx) { return ctx.cancelled != nullptr && ctx.cancelled->load(); }

}  // namespace caliber::workers
