// The receiving end of stage-to-stage activation streaming (WorkerService.PushActivations).
// An upstream worker streams the activations entering this worker's stage in row chunks;
// the worker token is checked, each chunk's CRC-32 is checked, and only a complete, in-order stream is kept. Flow control
// is the transport's: the handler reads the next chunk only after it copied the previous one.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "caliber/v1/worker_protocol.grpc.pb.h"
#include "core/tensor/matrix.h"

namespace caliber::workers {

class ActivationInbox final : public v1::WorkerService::Service {
 public:
  // `worker_token` empty: no token check; otherwise pushes must carry it (services/auth).
  explicit ActivationInbox(std::string worker_token = "") : worker_token_(std::move(worker_token)) {}

  grpc::Status PushActivations(grpc::ServerContext* context, grpc::ServerReader<v1::ActivationChunk>* reader,
                               v1::PushActivationsResponse* response) override;

  // The complete activations pushed for `assignment_id` (after `layer`), removed from the
  // inbox; nullopt if none (yet).
  std::optional<MatrixF> Take(const std::string& assignment_id, int layer);
  // Total bytes received, for metrics.
  int64_t bytes_received() const;

 private:
  struct Entry {
    int layer = 0;
    MatrixF data;
  };
  const std::string worker_token_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> complete_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

// Streams `hidden` (the activations after `layer`) to the worker at `address` for its
// assignment; returns the bytes sent.
absl::StatusOr<int64_t> PushActivations(const std::shared_ptr<grpc::Channel>& channel,
                                        const std::string& job_id, const std::string& assignment_id,
                                        int layer, const MatrixF& hidden, const std::string& token);

}  // namespace caliber::workers
