// The deadlines of one HTTP exchange with an object store. A hung store (a paused process, a
// black-holed route) accepts connections and then says nothing, so every exchange needs its own
// bounds, and they must shrink as the operation's retry budget runs out; otherwise one stuck try
// outlives any budget. Three bounds:
//  - connect: TCP (and TLS) set-up;
//  - stall: no byte moving either way for this long (a low-speed limit of one byte);
//  - total: the stall bound plus the time the exchange's bytes take at a minimum throughput,
//    so a store that trickles a byte now and then cannot hold a request forever either, and
//    a multi-gigabyte transfer still gets the time its size needs.
#pragma once

#include <chrono>
#include <cstdint>

namespace caliber::storage {

struct RequestTimeouts {
  // A try is always given at least this long (or wait_ms, if shorter) to get an answer, even
  // with less of the retry budget left: a shorter one could not succeed.
  static constexpr int64_t kMinWaitMs = 1000;

  int64_t connect_ms = 10000;
  // Stall bound, and the base of the total.
  int64_t wait_ms = 30000;
  // The total allows (bytes sent + bytes announced to be received) at this rate; > 0.
  int64_t min_bytes_per_second = 1 << 20;

  // The total bound of an exchange moving `bytes`: wait_ms + bytes / min_bytes_per_second.
  int64_t TotalMs(int64_t bytes) const;

  // These timeouts for a try that starts with `budget_left` of its operation's retry budget:
  // the wait (and connect) bounds become min(wait_ms, max(budget_left, kMinWaitMs)); the
  // allowance for the bytes stays. A try that starts within the budget therefore ends by the
  // budget plus kMinWaitMs plus bytes / min_bytes_per_second (and the progress check's
  // granularity, about a second): the budget bounds a request with all its retries.
  RequestTimeouts Within(std::chrono::milliseconds budget_left) const;
};

}  // namespace caliber::storage
