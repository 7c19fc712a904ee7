#include "services/storage/retry_policy.h"

#include <algorithm>

namespace caliber::storage {

RetryBudget::RetryBudget(const RetryOptions& options, uint64_t seed)
    : options_(options), random_(seed), start_(std::chrono::steady_clock::now()) {}

std::chrono::milliseconds RetryBudget::elapsed() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start_);
}

std::chrono::milliseconds RetryBudget::left() const {
  return std::max(std::chrono::milliseconds(options_.retry_budget_ms) - elapsed(),
                  std::chrono::milliseconds(0));
}

std::optional<std::chrono::milliseconds> RetryBudget::NextDelay() {
  if (attempts_ >= options_.max_attempts) return std::nullopt;
  // Doubling in 64 bits, capped before it can overflow.
  int64_t backoff = std::max(options_.initial_backoff_ms, 0);
  for (int i = 1; i < attempts_ && backoff < options_.max_backoff_ms; ++i) backoff *= 2;
  backoff = std::min<int64_t>(backoff, std::max(options_.max_backoff_ms, 0));
  const int64_t half = backoff / 2;
  std::uniform_int_distribution<int64_t> jitter(0, backoff - half);
  const std::chrono::milliseconds delay(half + jitter(random_));
  if (elapsed() + delay >= std::chrono::milliseconds(options_.retry_budget_ms)) {
    return std::nullopt;
  }
  ++attempts_;
  return delay;
}

}  // namespace caliber::storage
