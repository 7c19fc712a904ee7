#include "cli/service_client.h"

#include <chrono>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/exit_codes.h"
#include "grpcpp/grpcpp.h"
#include "services/auth/call_credentials.h"
#include "services/auth/secret_file_mode.h"
#include "services/auth/tls.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:7070", "coordinator address (env CALIBER_COORDINATOR)");
ABSL_FLAG(std::string, token_file, "", "file holding this client's bearer token");
ABSL_FLAG(bool, allow_insecure_token_file_permissions, false,
          "use --token-file even when group/others may read or write it (warns)");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA bundle: connect with TLS and verify the coordinator");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate (mTLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM client key (mTLS)");
ABSL_FLAG(std::string, tls_server_name, "", "expected server name (default: the host)");

namespace caliber::cli {

std::unique_ptr<grpc::ClientContext> ServiceClient::Context(int timeout_s) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (timeout_s > 0) context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

absl::StatusOr<ServiceClient> ConnectFromFlags() {
  auth::TlsOptions tls;
  tls.ca_file = absl::GetFlag(FLAGS_tls_ca);
  tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  tls.key_file = absl::GetFlag(FLAGS_tls_key);
  tls.server_name_override = absl::GetFlag(FLAGS_tls_server_name);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = auth::MakeChannel(absl::GetFlag(FLAGS_coordinator), tls);
  if (!channel.ok()) return channel.status();
  ServiceClient client;
  client.stub = v1::QuantService::NewStub(*channel);
  if (const std::string f = absl::GetFlag(FLAGS_token_file); !f.empty()) {
    if (absl::Status s = auth::CheckSecretFileMode("caliber", "--token-file", f,
                                                   absl::GetFlag(FLAGS_allow_insecure_token_file_permissions));
        !s.ok()) {
      return s;
    }
    absl::StatusOr<std::string> token = auth::ReadTokenFile(f);
    if (!token.ok()) return token.status();
    client.token = *token;
  }
  return client;
}

std::string CoordinatorAddress() { return absl::GetFlag(FLAGS_coordinator); }

std::string JobLine(const v1::QuantJob& job) {
  const int done = job.layers_done(), total = std::max(1, job.layers_total());
  constexpr int kWidth = 20;
  std::string bar(static_cast<size_t>(kWidth * done / total), '#');
  bar.resize(kWidth, '.');
  std::string line = absl::StrFormat("%s %-9s %-11s [%s] %d/%d layers", job.job_id(),
                                     v1::JobState_Name(job.state()), job.phase(), bar, done, job.layers_total());
  for (const v1::StageProgress& s : job.stages()) {
    absl::StrAppendFormat(&line, " | s%d %s %d/%d", s.index(), s.worker_id().empty() ? "-" : s.worker_id(),
                          s.layers_done(), s.end_layer() - s.first_layer());
  }
  return line;
}

std::string JobDetails(const v1::QuantJob& job) {
  const v1::QuantJobSpec& s = job.spec();
  std::string out = absl::StrFormat(
      "job        %s\nstate      %s (%s)\nmodel      %s\noutput     %s\nmethod     %s w%d g%d %s\n"
      "propagate  %s\nlayers     %d/%d\n",
      job.job_id(), v1::JobState_Name(job.state()), job.phase(), s.model_uri(), s.output_uri(), s.method().name(),
      s.method().bits(), s.method().group_size(), s.method().asym() ? "asym" : "sym",
      v1::Propagation_Name(s.propagation()), job.layers_done(), job.layers_total());
  for (const v1::StageProgress& st : job.stages()) {
    absl::StrAppendFormat(&out, "stage %d    layers [%d, %d) worker %s %d done, attempt %d\n", st.index(),
                          st.first_layer(), st.end_layer(), st.worker_id().empty() ? "-" : st.worker_id(),
                          st.layers_done(), st.attempt());
  }
  if (job.state() == v1::FAILED) {
    absl::StrAppendFormat(&out, "error      %s: %s\n",
                          absl::StatusCodeToString(static_cast<absl::StatusCode>(job.error_code())), job.error_message());
  }
  if (job.state() == v1::SUCCEEDED) {
    const v1::QualityReport& r = job.report();
    absl::StrAppendFormat(&out, "modules    %d, mean relative output error %.6f\n", r.modules(),
                          r.mean_relative_output_error());
    if (r.ppl_quantized() > 0) {
      absl::StrAppendFormat(&out, "perplexity fp %.4f -> quantized %.4f\n", r.ppl_fp(), r.ppl_quantized());
    }
    absl::StrAppendFormat(&out, "report     %s\n", r.report_uri());
  }
  return out;
}

int ExitCodeOf(const v1::QuantJob& job) {
  switch (job.state()) {
    case v1::SUCCEEDED: return kExitOk;
    case v1::CANCELLED: return kExitCancelled;
    default: return kExitFailed;
  }
}

}  // namespace caliber::cli
