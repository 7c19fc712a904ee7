// The worker's reading of gRPC's UNAVAILABLE messages when the coordinator's TLS refuses it.
// The messages are the ones gRPC 1.51 gives (seen against a real mTLS coordinator).
#include "workers/tls_refusal.h"

#include <gtest/gtest.h>

namespace caliber::workers {
namespace {

constexpr char kSocketClosed[] =
    "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:39617: Socket closed";

TEST(TlsRefusal, ForeignCa) {
  EXPECT_NE(ExplainTlsRefusal("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Tls "
                              "handshake failed: SSL_ERROR_SSL: error:0A000086:SSL routines::certificate verify failed",
                              true)
                .find("does not trust the coordinator's certificate"),
            std::string::npos);
}

TEST(TlsRefusal, WrongServerName) {
  EXPECT_NE(ExplainTlsRefusal("last error: UNKNOWN: ipv4:127.0.0.1:1: Custom verification check failed with error: "
                              "UNAUTHENTICATED: Hostname Verification Check failed.",
                              true)
                .find("--tls-server-name"),
            std::string::npos);
}

TEST(TlsRefusal, HangUpMeansUntrustedClientCertOrPlaintext) {
  EXPECT_NE(ExplainTlsRefusal(kSocketClosed, true).find("does not trust this worker's certificate"), std::string::npos);
  EXPECT_NE(ExplainTlsRefusal(kSocketClosed, false).find("requires TLS"), std::string::npos);
}

TEST(TlsRefusal, NotTls) {
  EXPECT_EQ(ExplainTlsRefusal("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: "
                              "Connection refused",
                              true),
            "");
  EXPECT_EQ(ExplainTlsRefusal("Deadline Exceeded", false), "");
}

}  // namespace
}  // namespace caliber::workers
