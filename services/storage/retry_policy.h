// When to try a failed request again, and how long to wait first: exponential backoff with
// jitter, bounded by a number of attempts and by a time budget. The jitter spreads retries of
// many clients hitting the same overloaded server; its random source is seeded by the caller
// so tests (and reruns) see the same delays.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>

namespace caliber::storage {

struct RetryOptions {
  int max_attempts = 8;  // tries in all, the first one included
  int initial_backoff_ms = 100;
  int max_backoff_ms = 5000;
  // No retry starts once this much time has passed since the first try began, nor one whose
  // pause would end after that point.
  int retry_budget_ms = 60000;
};

// The retry state of one operation; create it just before the first try.
class RetryBudget {
 public:
  RetryBudget(const RetryOptions& options, uint64_t seed);

  // Called after try number `attempts()` failed in a way worth retrying: the pause to take
  // before the next try, or nullopt when attempts or budget are spent. The pause after try n
  // is uniform in [b/2, b], b = min(max_backoff, initial_backoff * 2^(n-1)).
  std::optional<std::chrono::milliseconds> NextDelay();

  int attempts() const { return attempts_; }
  std::chrono::milliseconds elapsed() const;
  // What is left of the budget (0 once it is spent): the next try's timeouts shrink to it.
  std::chrono::milliseconds left() const;

 private:
  RetryOptions options_;
  std::mt19937_64 random_;
  std::chrono::steady_clock::time_point start_;
  int attempts_ = 1;
};

}  // namespace caliber::storage
