// Validity of PEM certificates, checked with OpenSSL's X509 API before gRPC sees them: gRPC
// would load an expired certificate without a word and every handshake would then fail.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace caliber::auth {

struct CertDates {
  std::string subject;  // one-line distinguished name, for messages
  absl::Time not_before;
  absl::Time not_after;
};

// Every certificate in `pem` (a chain or a CA bundle), at most kMaxCertificates of them.
// InvalidArgument names `what` and `path` when none parses.
inline constexpr int kMaxCertificates = 1000;
absl::StatusOr<std::vector<CertDates>> ParseCertificates(absl::string_view what, const std::string& path,
                                                         const std::string& pem);

// FailedPrecondition when a certificate is expired or not yet valid at `now`, naming the file,
// the subject and both dates. Every certificate counts: an expired intermediate breaks the chain,
// an expired CA in a bundle can no longer verify anything (drop it from the bundle).
absl::Status CheckDates(absl::string_view what, const std::string& path, const std::vector<CertDates>& certs,
                        absl::Time now);

// The earliest not_after of `certs` (InfiniteFuture when empty).
absl::Time EarliestExpiry(const std::vector<CertDates>& certs);

// "2026-12-07 20:10:20 UTC".
std::string FormatUtc(absl::Time t);

}  // namespace caliber::auth
