#include "services/storage/request_timeouts.h"

#include <algorithm>
#include <limits>

namespace caliber::storage {

int64_t RequestTimeouts::TotalMs(int64_t bytes) const {
  const int64_t rate = std::max<int64_t>(min_bytes_per_second, 1);
  bytes = std::max<int64_t>(bytes, 0);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const int64_t base = std::max<int64_t>(wait_ms, 0);
  // Whole seconds and the remainder apart, so that bytes * 1000 cannot overflow.
  const int64_t seconds = bytes / rate;
  if (seconds > (kMax - base) / 1000 - 1) return kMax;
  return base + seconds * 1000 + (bytes % rate) * 1000 / rate;
}

RequestTimeouts RequestTimeouts::Within(std::chrono::milliseconds budget_left) const {
  RequestTimeouts out = *this;
  const int64_t left = std::max<int64_t>(budget_left.count(), kMinWaitMs);
  out.wait_ms = std::min(wait_ms, left);
  out.connect_ms = std::min(connect_ms, out.wait_ms);
  return out;
}

}  // namespace caliber::storage
