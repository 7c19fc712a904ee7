#include "services/auth/cert_check.h"

#include <gtest/gtest.h>

namespace caliber::auth {
namespace {

absl::Time At(int year) { return absl::FromCivil(absl::CivilSecond(year, 1, 1, 0, 0, 0), absl::UTCTimeZone()); }

TEST(CertCheck, DatesNameTheFileAndTheDates) {
  const std::vector<CertDates> certs = {{"/CN=leaf", At(2020), At(2030)}};
  EXPECT_TRUE(CheckDates("cert_file", "a.pem", certs, At(2025)).ok());
  const absl::Status expired = CheckDates("cert_file", "a.pem", certs, At(2031));
  EXPECT_EQ(expired.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(expired.message().find("TLS cert_file a.pem: certificate /CN=leaf has expired"), absl::string_view::npos)
      << expired;
  EXPECT_NE(expired.message().find("2030-01-01 00:00:00 UTC"), absl::string_view::npos);
  const absl::Status early = CheckDates("ca_file", "ca.pem", certs, At(2019));
  EXPECT_NE(early.message().find("is not yet valid"), absl::string_view::npos) << early;
}

TEST(CertCheck, EveryCertificateOfABundleCounts) {
  const std::vector<CertDates> certs = {{"/CN=new", At(2020), At(2030)}, {"/CN=old", At(2010), At(2015)}};
  EXPECT_FALSE(CheckDates("ca_file", "ca.pem", certs, At(2025)).ok());
  EXPECT_EQ(EarliestExpiry(certs), At(2015));
}

TEST(CertCheck, GarbageIsNotACertificate) {
  EXPECT_EQ(ParseCertificates("cert_file", "x.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace caliber::auth
