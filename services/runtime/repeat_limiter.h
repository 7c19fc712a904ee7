// Rate limit for a log line that a retry loop would otherwise print every half second: a
// message is printed when it differs from the last one printed, or when `every` has passed;
// the repeats in between are counted and the next printed line says how many there were.
#pragma once

#include <string>

#include "absl/time/time.h"

namespace caliber::runtime {

class RepeatLimiter {
 public:
  explicit RepeatLimiter(absl::Duration every) : every_(every) {}

  // Whether to print `message` now; `suppressed` gets the number of identical messages
  // dropped since the last printed one (0 on a change of message).
  bool ShouldLog(const std::string& message, int& suppressed, absl::Time now = absl::Now()) {
    if (message != last_ || now - last_time_ >= every_) {
      suppressed = message == last_ ? dropped_ : 0;
      last_ = message;
      last_time_ = now;
      dropped_ = 0;
      return true;
    }
    ++dropped_;
    return false;
  }

  // Forget the last message (after a success, the next failure is news again).
  void Reset() {
    last_.clear();
    dropped_ = 0;
  }

 private:
  absl::Duration every_;
  std::string last_;
  absl::Time last_time_ = absl::InfinitePast();
  int dropped_ = 0;
};

}  // namespace caliber::runtime
