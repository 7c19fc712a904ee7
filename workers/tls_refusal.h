// Why the worker's connection to the coordinator failed at the TLS layer. gRPC reports a failed
// handshake as UNAVAILABLE, like a coordinator that is down, so without this the worker would
// log "cannot reach" for a foreign CA or a plaintext/TLS mix and retry forever without a clue.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace caliber::workers {

// An explanation with the fix to try, from gRPC's status message; "" when the failure does not
// look like TLS. `tls_enabled`: whether this worker dials with TLS.
std::string ExplainTlsRefusal(absl::string_view grpc_message, bool tls_enabled);

}  // namespace caliber::workers
