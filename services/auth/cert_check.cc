#include "services/auth/cert_check.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>

#include "absl/strings/str_cat.h"

namespace caliber::auth {
namespace {

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};

int NoPassword(char*, int, int, void*) { return 0; }

absl::StatusOr<absl::Time> ToTime(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return absl::InvalidArgumentError("bad ASN1 time");
  return absl::FromTimeT(timegm(&tm));
}

std::string Subject(X509* cert) {
  char buf[256] = {};
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf) - 1);
  return buf;
}

std::string Label(absl::string_view what, const std::string& path) { return absl::StrCat("TLS ", what, " ", path); }

}  // namespace

std::string FormatUtc(absl::Time t) { return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone()); }

absl::StatusOr<std::vector<CertDates>> ParseCertificates(absl::string_view what, const std::string& path,
                                                         const std::string& pem) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<CertDates> out;
  while (static_cast<int>(out.size()) < kMaxCertificates) {
    // PEM_read_bio_X509 skips other blocks (a private key in the same file).
    std::unique_ptr<X509, X509Deleter> cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassword, nullptr));
    if (cert == nullptr) break;
    absl::StatusOr<absl::Time> nb = ToTime(X509_get0_notBefore(cert.get()));
    absl::StatusOr<absl::Time> na = ToTime(X509_get0_notAfter(cert.get()));
    if (!nb.ok() || !na.ok()) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat(Label(what, path), ": certificate ", Subject(cert.get()), " has unreadable validity dates"));
    }
    out.push_back({Subject(cert.get()), *nb, *na});
  }
  ERR_clear_error();
  if (out.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(Label(what, path), ": no PEM certificate could be parsed"));
  }
  return out;
}

absl::Status CheckDates(absl::string_view what, const std::string& path, const std::vector<CertDates>& certs,
                        absl::Time now) {
  for (const CertDates& c : certs) {
    const std::string dates = absl::StrCat("valid from ", FormatUtc(c.not_before), " to ", FormatUtc(c.not_after),
                                           "; now ", FormatUtc(now));
    if (now < c.not_before) {
      return absl::FailedPreconditionError(
          absl::StrCat(Label(what, path), ": certificate ", c.subject, " is not yet valid (", dates, ")"));
    }
    if (now > c.not_after) {
      return absl::FailedPreconditionError(
          absl::StrCat(Label(what, path), ": certificate ", c.subject, " has expired (", dates, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Time EarliestExpiry(const std::vector<CertDates>& certs) {
  absl::Time earliest = absl::InfiniteFuture();
  for (const CertDates& c : certs) earliest = std::min(earliest, c.not_after);
  return earliest;
}

}  // namespace caliber::auth
