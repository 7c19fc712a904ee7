// Bounds on everything a client sends the QuantService, checked before anything is stored or
// echoed: a job record, a list page and an error message stay small whatever the request held.
// docs/api.md ("Limits") states each of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "caliber/v1/quant_service.pb.h"
#include "google/protobuf/map.h"

namespace caliber::coordinator {

inline constexpr size_t kMaxJobIdBytes = 64;        // ids are "job-" + 16 hex digits
inline constexpr size_t kMaxRequestIdBytes = 256;
inline constexpr size_t kMaxPageTokenBytes = 32;
inline constexpr size_t kMaxUriBytes = 2048;
inline constexpr int kMaxLabels = 64;
inline constexpr size_t kMaxLabelNameBytes = 63;    // a key's name part, and a value
inline constexpr size_t kMaxLabelPrefixBytes = 253; // a key's optional DNS-subdomain prefix
inline constexpr size_t kMaxSpecBytes = 64 << 10;   // the serialized QuantJobSpec
inline constexpr int kMaxSeqLen = 131072;           // tokens per calibration/evaluation sequence
inline constexpr int64_t kMaxCalibrationTokens = int64_t{1} << 24;  // nsamples x seq_len
inline constexpr int kMaxBatchSeqs = 4096;
inline constexpr size_t kMaxErrorMessageBytes = 4 << 10;
// Serialized request messages, refused before they are parsed (services/runtime/sized_unary.h).
// Get/Cancel/Watch carry one job_id, List a page size and token: 4 KiB is room to spare, and
// whatever else (unknown fields) a larger message holds is never read.
inline constexpr size_t kMaxSmallRequestBytes = 4 << 10;
// SubmitQuantJob: the spec's bound plus 16 KiB for the request_id and the framing.
inline constexpr size_t kMaxSubmitRequestBytes = kMaxSpecBytes + (16 << 10);
// The workers' reports and heartbeats (ids, URIs, an error message): 1 MiB.
// ReduceTransformShare (hidden_size^2 doubles) is bounded by the port's 64 MiB receive limit.
inline constexpr size_t kMaxWorkerReportBytes = 1 << 20;
// A ListQuantJobs page stops before its serialized size passes this, so it fits gRPC's default
// 4 MiB receive limit with room for framing.
inline constexpr size_t kMaxListPageBytes = 3 << 20;

// An identifier field (job_id, request_id, ...) of at most `max_bytes`; the error says how long
// the value was and the bound, never the value itself.
absl::Status CheckIdentifier(absl::string_view field, absl::string_view value, size_t max_bytes);

// Kubernetes label syntax: a key is [prefix/]name, the prefix a DNS subdomain (lowercase
// alphanumerics, '-', '.'; at most 253 bytes), the name at most 63 bytes of alphanumerics, '-',
// '_', '.' beginning and ending with an alphanumeric; a value is empty or has the name's form.
absl::Status ValidateLabels(const google::protobuf::Map<std::string, std::string>& labels);

// A message of at most kMaxErrorMessageBytes (cut at a UTF-8 character boundary, marked).
std::string BoundedMessage(absl::string_view message);

}  // namespace caliber::coordinator
