#include "workers/inbox_store.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace caliber::workers {
namespace {

constexpr size_t kMaxAssignmentIdBytes = 256;

}  // namespace

InboxStore::Reservation& InboxStore::Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    if (store_ != nullptr) store_->Release(id_, bytes_);
    store_ = other.store_;
    id_ = std::move(other.id_);
    layer_ = other.layer_;
    bytes_ = other.bytes_;
    other.store_ = nullptr;
  }
  return *this;
}

InboxStore::Reservation::~Reservation() {
  if (store_ != nullptr) store_->Release(id_, bytes_);
}

void InboxStore::Expect(const std::string& assignment_id, int layer, int64_t rows, int64_t cols) {
  absl::MutexLock lock(&mu_);
  Expected& e = expected_[assignment_id];
  e.layer = layer;
  e.rows = rows;
  e.cols = cols;
}

void InboxStore::Forget(const std::string& assignment_id) {
  absl::MutexLock lock(&mu_);
  expected_.erase(assignment_id);
  if (auto it = complete_.find(assignment_id); it != complete_.end()) DropLocked(it);
}

absl::StatusOr<InboxStore::Reservation> InboxStore::Admit(const v1::ActivationChunk& header) {
  const std::string& id = header.assignment_id();
  if (id.empty() || id.size() > kMaxAssignmentIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("activation stream header needs an assignment_id of 1..", kMaxAssignmentIdBytes, " bytes"));
  }
  const int64_t rows = header.total_rows();
  const int64_t cols = header.cols();
  if (rows < 1 || rows > kMaxPushRows || cols < 1 || cols > kMaxPushCols) {
    return absl::InvalidArgumentError(absl::StrCat("activation stream declares ", rows, " x ", cols,
                                                   " floats; rows must be 1..", kMaxPushRows, " and columns 1..",
                                                   kMaxPushCols));
  }
  // At most 2^31 x 2^20 x 4 = 2^53: no overflow.
  const int64_t bytes = rows * cols * static_cast<int64_t>(sizeof(float));
  if (bytes > limits_.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("activation stream declares ", rows, " x ", cols, " floats (",
                                                   bytes, " bytes), more than this worker's inbox holds (",
                                                   limits_.max_bytes, " bytes, --max-push-inbox-bytes)"));
  }
  absl::MutexLock lock(&mu_);
  SweepLocked();
  auto it = expected_.find(id);
  if (it == expected_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no stage on this worker waits for activations of assignment ", id,
                     " (unknown, ended or moved; the next stage reads the stored copy)"));
  }
  Expected& e = it->second;
  if (header.layer() != e.layer) {
    return absl::FailedPreconditionError(absl::StrCat("assignment ", id, " waits for the activations after layer ",
                                                      e.layer, ", not ", header.layer()));
  }
  if (rows != e.rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("activation stream declares ", rows, " rows; assignment ", id, " needs ", e.rows));
  }
  if (e.cols > 0 && cols != e.cols) {
    return absl::InvalidArgumentError(absl::StrCat("activation stream declares ", cols,
                                                   " columns; the model's hidden size is ", e.cols));
  }
  if (e.receiving) {
    return absl::AlreadyExistsError(absl::StrCat("activations for assignment ", id, " are being received already"));
  }
  if (held_ + bytes > limits_.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("the activation inbox holds ", held_, " of ", limits_.max_bytes,
                                                     " bytes; a push of ", bytes, " does not fit"));
  }
  e.receiving = true;
  held_ += bytes;
  Reservation r;
  r.store_ = this;
  r.id_ = id;
  r.layer_ = header.layer();
  r.bytes_ = bytes;
  return r;
}

void InboxStore::Complete(Reservation reservation, MatrixF data) {
  absl::MutexLock lock(&mu_);
  reservation.store_ = nullptr;  // its bytes move to the entry, or are released below
  auto e = expected_.find(reservation.id_);
  if (e == expected_.end()) {  // forgotten while it was received
    held_ -= reservation.bytes_;
    return;
  }
  e->second.receiving = false;
  if (auto old = complete_.find(reservation.id_); old != complete_.end()) DropLocked(old);
  complete_[reservation.id_] = Entry{reservation.layer_, std::move(data), reservation.bytes_, clock_()};
}

void InboxStore::Release(const std::string& id, int64_t bytes) {
  absl::MutexLock lock(&mu_);
  held_ -= bytes;
  if (auto e = expected_.find(id); e != expected_.end()) e->second.receiving = false;
}

std::optional<MatrixF> InboxStore::Take(const std::string& assignment_id, int layer) {
  absl::MutexLock lock(&mu_);
  SweepLocked();
  auto it = complete_.find(assignment_id);
  if (it == complete_.end() || it->second.layer != layer) return std::nullopt;
  MatrixF out = std::move(it->second.data);
  held_ -= it->second.bytes;
  complete_.erase(it);
  return out;
}

void InboxStore::Sweep() {
  absl::MutexLock lock(&mu_);
  SweepLocked();
}

void InboxStore::SweepLocked() {
  const absl::Time now = clock_();
  for (auto it = complete_.begin(); it != complete_.end();) {
    auto next = std::next(it);
    if (now - it->second.arrived >= limits_.ttl) {
      std::fprintf(stderr, "caliber-worker: dropped %lld bytes pushed for assignment %s, unclaimed for %s\n",
                   static_cast<long long>(it->second.bytes), it->first.c_str(),
                   absl::FormatDuration(limits_.ttl).c_str());
      ++expired_;
      DropLocked(it);
    }
    it = next;
  }
}

void InboxStore::DropLocked(std::map<std::string, Entry>::iterator it) {
  held_ -= it->second.bytes;
  complete_.erase(it);
}

int64_t InboxStore::bytes_held() const {
  absl::MutexLock lock(&mu_);
  return held_;
}

int64_t InboxStore::expired() const {
  absl::MutexLock lock(&mu_);
  return expired_;
}

}  // namespace caliber::workers
