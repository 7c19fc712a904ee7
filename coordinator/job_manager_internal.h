// Small helpers shared by the files that implement JobManager (job_manager.cc,
// job_scheduler.cc, worker_reports.cc, job_tasks.cc). Not part of any public interface.
#pragma once

#include <mutex>
#include <random>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/status/status.h"
#include "caliber/v1/quant_service.pb.h"
#include "caliber/v1/worker_protocol.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/time_util.h"
#include "services/job_state.h"

namespace caliber::coordinator::internal {

// A prefixed random 64-bit hex id (jobs, assignments, worker sessions).
inline std::string RandomId(std::string_view prefix) {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  return absl::StrCat(std::string(prefix), absl::Hex(rng(), absl::kZeroPad16));
}

inline google::protobuf::Timestamp NowTimestamp() {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
}

// Transform-phase assignments are told apart by their prefix: their reports never touch the
// quantize phase's layer records.
inline bool IsTransformAssignment(const std::string& id) { return id.rfind("tfm-", 0) == 0; }

// A registering worker's id (1..256 bytes) and address (1..512 bytes): INVALID_ARGUMENT
// otherwise (worker_registry.cc).
absl::Status CheckWorkerIdentity(const v1::RegisterWorkerRequest& request);

}  // namespace caliber::coordinator::internal
