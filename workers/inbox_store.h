// What a worker's activation inbox holds, and what it agrees to hold. A push is admitted
// only for an assignment this worker holds and whose stage still waits for its input (Expect
// .. Forget), for the layer and row count that stage waits for, and only while the bytes held
// (complete streams plus the ones being received) stay within a bound. What is admitted but
// never taken expires after a TTL. Everything here works on the parsed header (the stream's
// first chunk), so the gRPC handler stays a thin loop that can be reshaped freely.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "caliber/v1/worker_protocol.pb.h"
#include "core/tensor/matrix.h"

namespace caliber::workers {

struct InboxLimits {
  // Complete and in-flight pushes together, in bytes (rows x cols x 4). One push declaring
  // more is INVALID_ARGUMENT; one that does not fit beside the others is RESOURCE_EXHAUSTED.
  int64_t max_bytes = int64_t{4} << 30;
  // A complete push nobody took is dropped this long after it arrived.
  absl::Duration ttl = absl::Minutes(10);
};

// Bounds on a declared shape that hold whatever the limits (columns: a hidden size).
inline constexpr int64_t kMaxPushRows = int64_t{1} << 31;
inline constexpr int64_t kMaxPushCols = int64_t{1} << 20;

class InboxStore {
 public:
  using Clock = std::function<absl::Time()>;
  explicit InboxStore(InboxLimits limits = {}, Clock clock = [] { return absl::Now(); })
      : limits_(limits), clock_(std::move(clock)) {}

  // Bytes reserved for one admitted stream; released when dropped unless Complete() took them.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& other) noexcept { *this = std::move(other); }
    Reservation& operator=(Reservation&& other) noexcept;
    ~Reservation();
    const std::string& assignment_id() const { return id_; }
    int layer() const { return layer_; }

   private:
    friend class InboxStore;
    InboxStore* store_ = nullptr;
    std::string id_;
    int layer_ = 0;
    int64_t bytes_ = 0;
  };

  // The stage of `assignment_id` will wait for the `rows` x `cols` activations after `layer`
  // (cols 0: not known yet). Repeating it updates the expectation.
  void Expect(const std::string& assignment_id, int layer, int64_t rows, int64_t cols);
  // The stage has its input or ended: what was pushed for it is dropped, later pushes refused.
  void Forget(const std::string& assignment_id);

  // Checks a stream's header (its first chunk) and reserves its bytes:
  // INVALID_ARGUMENT for a malformed or absurd shape, FAILED_PRECONDITION when no stage here
  // waits for it (unknown, ended or moved assignment; another layer), RESOURCE_EXHAUSTED when it
  // does not fit, ALREADY_EXISTS while another stream for the assignment is being received.
  absl::StatusOr<Reservation> Admit(const v1::ActivationChunk& header);
  // Keeps a received stream (replacing an older one for the same assignment) unless its
  // assignment was forgotten meanwhile.
  void Complete(Reservation reservation, MatrixF data);

  // The complete activations pushed for `assignment_id` (after `layer`), removed; nullopt if none.
  std::optional<MatrixF> Take(const std::string& assignment_id, int layer);
  // Drops complete pushes older than the TTL (also done by every other call).
  void Sweep();
  int64_t bytes_held() const;
  int64_t expired() const;

 private:
  struct Expected {
    int layer = 0;
    int64_t rows = 0;
    int64_t cols = 0;
    bool receiving = false;
  };
  struct Entry {
    int layer = 0;
    MatrixF data;
    int64_t bytes = 0;
    absl::Time arrived;
  };
  void Release(const std::string& id, int64_t bytes);
  void SweepLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropLocked(std::map<std::string, Entry>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const InboxLimits limits_;
  const Clock clock_;
  mutable absl::Mutex mu_;
  std::map<std::string, Expected> expected_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Entry> complete_ ABSL_GUARDED_BY(mu_);
  int64_t held_ ABSL_GUARDED_BY(mu_) = 0;  // complete + reserved
  int64_t expired_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace caliber::workers
