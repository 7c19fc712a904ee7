// The receiving end of stage-to-stage activation streaming (WorkerService.PushActivations).
// An upstream worker streams the activations entering this worker's stage in row chunks;
// the worker token is checked, the first chunk's header is admitted or refused before anything
// else is read (inbox_store.h: only for a stage here that waits for it, a sane shape, within the
// byte bound), each chunk's CRC-32 is checked, and only a complete, in-order stream is kept. Flow
// control is the transport's: the handler reads the next chunk only after it copied the previous one.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "caliber/v1/worker_protocol.grpc.pb.h"
#include "core/tensor/matrix.h"
#include "workers/inbox_store.h"

namespace caliber::workers {

class ActivationInbox final : public v1::WorkerService::Service {
 public:
  // `worker_token` empty: no token check; otherwise pushes must carry it (services/auth).
  explicit ActivationInbox(std::string worker_token = "", InboxLimits limits = {},
                           InboxStore::Clock clock = [] { return absl::Now(); })
      : worker_token_(std::move(worker_token)), store_(limits, std::move(clock)) {}

  grpc::Status PushActivations(grpc::ServerContext* context, grpc::ServerReader<v1::ActivationChunk>* reader,
                               v1::PushActivationsResponse* response) override;

  // The complete activations pushed for `assignment_id` (after `layer`), removed from the
  // inbox; nullopt if none (yet).
  std::optional<MatrixF> Take(const std::string& assignment_id, int layer) {
    return store_.Take(assignment_id, layer);
  }
  // Which pushes are admitted (Expect / Forget) and what is held.
  InboxStore& store() { return store_; }

 private:
  // Receives the rest of an admitted stream whose first chunk is `chunk`.
  grpc::Status Receive(grpc::ServerReader<v1::ActivationChunk>* reader, v1::ActivationChunk& chunk,
                       InboxStore::Reservation reservation, v1::PushActivationsResponse* response);

  const std::string worker_token_;
  InboxStore store_;
};

// Streams `hidden` (the activations after `layer`) to the worker at `address` for its
// assignment; returns the bytes sent.
absl::StatusOr<int64_t> PushActivations(const std::shared_ptr<grpc::Channel>& channel,
                                        const std::string& job_id, const std::string& assignment_id,
                                        int layer, const MatrixF& hidden, const std::string& token);

}  // namespace caliber::workers
