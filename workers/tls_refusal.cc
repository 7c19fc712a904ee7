#include "workers/tls_refusal.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace caliber::workers {
namespace {

// One text for the alert and for the bare hang-up (TLS 1.3 servers may do either), so the
// rate limit, keyed on the text, does not see two alternating messages.
constexpr char kUntrusted[] =
    "the coordinator broke off the TLS handshake: it probably does not trust this worker's certificate (is "
    "--tls-cert signed by the CA in the coordinator's --tls-ca?)";

}  // namespace

std::string ExplainTlsRefusal(absl::string_view message, bool tls_enabled) {
  const std::string m = absl::AsciiStrToLower(message);
  // The peer hung up right after connecting: how a TLS server answers a plaintext client, and
  // how a TLS 1.3 server answers a client certificate it does not trust.
  const bool hung_up = absl::StrContains(m, "socket closed") || absl::StrContains(m, "connection reset") ||
                       absl::StrContains(m, "broken pipe") || absl::StrContains(m, "end of tcp stream");
  if (!tls_enabled) {
    if (hung_up || absl::StrContains(m, "handshake")) {
      return "the coordinator closed a plaintext connection: it probably requires TLS (give this worker --tls-ca, "
             "and --tls-cert/--tls-key when it requires client certificates)";
    }
    return "";
  }
  if (absl::StrContains(m, "certificate verify failed")) {
    return "this worker does not trust the coordinator's certificate (is --tls-ca the CA that signed it?)";
  }
  if (absl::StrContains(m, "unknown ca") || absl::StrContains(m, "bad certificate") ||
      absl::StrContains(m, "certificate required")) {
    return kUntrusted;
  }
  if (absl::StrContains(m, "peer name") || absl::StrContains(m, "hostname") ||
      absl::StrContains(m, "subject alternative name")) {
    return "the coordinator's certificate does not name the address dialled (--coordinator) or --tls-server-name";
  }
  if (absl::StrContains(m, "wrong version number") || absl::StrContains(m, "packet length")) {
    return "the coordinator does not speak TLS (it runs without --tls-cert?)";
  }
  if (absl::StrContains(m, "handshake")) return "the TLS handshake with the coordinator failed";
  if (hung_up) {
    return kUntrusted;
  }
  return "";
}

}  // namespace caliber::workers
