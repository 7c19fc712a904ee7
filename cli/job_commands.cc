// The client side of the service: `caliber submit | watch | status | list | cancel` talk to a
// caliber-coordinator over gRPC (see docs/api.md). Exit codes: 0 ok / job succeeded, 1 job
// failed or request refused, 2 usage, 3 job cancelled.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/service_client.h"
#include "grpcpp/grpcpp.h"
#include "services/runtime/env_flags.h"

// Shared with `caliber quantize` (same names, same meaning).
ABSL_DECLARE_FLAG(std::string, calib);
ABSL_DECLARE_FLAG(std::string, out);
ABSL_DECLARE_FLAG(std::string, method);
ABSL_DECLARE_FLAG(int, bits);
ABSL_DECLARE_FLAG(int, group_size);
ABSL_DECLARE_FLAG(bool, act_order);
ABSL_DECLARE_FLAG(bool, static_groups);
ABSL_DECLARE_FLAG(bool, asym);
ABSL_DECLARE_FLAG(bool, mse);
ABSL_DECLARE_FLAG(double, damp);
ABSL_DECLARE_FLAG(int, lora_rank);
ABSL_DECLARE_FLAG(int, lora_a_bits);
ABSL_DECLARE_FLAG(int, refine_iters);
ABSL_DECLARE_FLAG(int, nsamples);
ABSL_DECLARE_FLAG(uint64_t, seed);
ABSL_DECLARE_FLAG(std::string, calib_sampling);
ABSL_DECLARE_FLAG(std::string, propagation);
ABSL_DECLARE_FLAG(int, batch_seqs);
ABSL_DECLARE_FLAG(std::string, eval_text);
ABSL_DECLARE_FLAG(std::string, eval_tokens);
ABSL_DECLARE_FLAG(int, eval_windows);

ABSL_FLAG(bool, wait, false, "submit: follow the job to its end; the exit code reflects the outcome");
ABSL_FLAG(int, priority, 0, "submit: higher runs first");
ABSL_FLAG(std::string, labels, "", "submit: k=v,k2=v2");
ABSL_FLAG(std::string, request_id, "", "submit: idempotency key (default: random)");
ABSL_FLAG(int, max_workers, 0, "submit: at most this many workers (0: all)");
ABSL_FLAG(int, page_size, 50, "list: jobs per page");

namespace caliber::cli {
namespace {

// Local paths become file:// URIs (absolute), URIs pass through.
std::string ToUri(const std::string& location) {
  if (location.find("://") != std::string::npos || location.empty()) return location;
  return "file://" + std::filesystem::absolute(location).lexically_normal().string();
}

int Report(const char* command, const absl::Status& s) {
  std::fprintf(stderr, "caliber %s: %s\n", command, s.ToString().c_str());
  return 1;
}

// Streams the job's events until it ends; returns the exit code.
int Follow(const ServiceClient& client, const std::string& job_id) {
  v1::WatchQuantJobRequest request;
  request.set_job_id(job_id);
  auto context = client.Context(0);
  std::unique_ptr<grpc::ClientReader<v1::QuantJobEvent>> reader = client.stub->WatchQuantJob(context.get(), request);
  v1::QuantJobEvent event;
  v1::QuantJob last;
  const bool tty = isatty(fileno(stderr));
  while (reader->Read(&event)) {
    last = event.job();
    std::fprintf(stderr, tty ? "\r\033[K%s" : "%s\n", JobLine(last).c_str());
  }
  if (tty) std::fprintf(stderr, "\n");
  if (grpc::Status s = reader->Finish(); !s.ok()) return Report("watch", FromGrpc(s));
  std::printf("%s", JobDetails(last).c_str());
  return ExitCodeOf(last);
}

absl::StatusOr<v1::SubmitQuantJobRequest> RequestFromFlags() {
  v1::SubmitQuantJobRequest request;
  std::string id = absl::GetFlag(FLAGS_request_id);
  if (id.empty()) id = absl::StrCat("cli-", absl::Hex(std::random_device{}() * uint64_t{0x9E3779B97F4A7C15} ^ std::random_device{}()));
  request.set_request_id(id);
  v1::QuantJobSpec& spec = *request.mutable_spec();
  spec.set_model_uri(ToUri(absl::GetFlag(FLAGS_model)));
  spec.set_output_uri(ToUri(absl::GetFlag(FLAGS_out)));
  v1::CalibrationData& c = *spec.mutable_calibration();
  c.set_uri(ToUri(absl::GetFlag(FLAGS_calib)));
  c.set_format(absl::GetFlag(FLAGS_format));
  c.set_nsamples(absl::GetFlag(FLAGS_nsamples));
  c.set_seq_len(absl::GetFlag(FLAGS_seq_len));
  c.set_seed(absl::GetFlag(FLAGS_seed));
  c.set_sampling(absl::GetFlag(FLAGS_calib_sampling));
  v1::QuantMethod& m = *spec.mutable_method();
  m.set_name(absl::GetFlag(FLAGS_method));
  m.set_bits(absl::GetFlag(FLAGS_bits));
  m.set_group_size(absl::GetFlag(FLAGS_group_size));
  m.set_asym(absl::GetFlag(FLAGS_asym));
  m.set_act_order(absl::GetFlag(FLAGS_act_order));
  m.set_static_groups(absl::GetFlag(FLAGS_static_groups));
  m.set_mse(absl::GetFlag(FLAGS_mse));
  m.set_damp(absl::GetFlag(FLAGS_damp));
  if (m.name() == "gptq_lora") {
    m.set_lora_rank(absl::GetFlag(FLAGS_lora_rank));
    m.set_refine_iters(absl::GetFlag(FLAGS_refine_iters));
  }
  m.set_lora_a_bits(absl::GetFlag(FLAGS_lora_a_bits));
  m.set_act_bits(absl::GetFlag(FLAGS_act_bits));
  const std::string p = absl::GetFlag(FLAGS_propagation);
  if (p == "quantized" || p == "sequential") {
    spec.set_propagation(v1::SEQUENTIAL);
  } else if (p == "fp" || p == "pipelined") {
    spec.set_propagation(v1::PIPELINED);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--propagation must be sequential or pipelined, got '", p, "'"));
  }
  spec.set_batch_seqs(absl::GetFlag(FLAGS_batch_seqs));
  spec.set_priority(absl::GetFlag(FLAGS_priority));
  spec.set_max_workers(absl::GetFlag(FLAGS_max_workers));
  for (absl::string_view kv : absl::StrSplit(absl::GetFlag(FLAGS_labels), ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p2 = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    (*spec.mutable_labels())[p2.first] = p2.second;
  }
  const std::string eval = !absl::GetFlag(FLAGS_eval_text).empty() ? absl::GetFlag(FLAGS_eval_text)
                                                                    : absl::GetFlag(FLAGS_eval_tokens);
  if (!eval.empty()) {
    v1::EvaluationData& e = *spec.mutable_evaluation();
    e.set_uri(ToUri(eval));
    e.set_format(absl::GetFlag(FLAGS_eval_text).empty() ? "auto" : "text");
    e.set_seq_len(absl::GetFlag(FLAGS_seq_len));
    e.set_max_windows(absl::GetFlag(FLAGS_eval_windows));
  }
  return request;
}

std::vector<char*> Parse(int argc, char** argv, const char* usage) {
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  // CALIBER_COORDINATOR, CALIBER_TOKEN_FILE, ... for flags not given on the command line.
  if (absl::Status s = runtime::ApplyEnvOverrides(argc, argv); !s.ok()) {
    std::fprintf(stderr, "caliber: %s\n", s.ToString().c_str());
    std::exit(2);
  }
  return args;
}

}  // namespace

int RunSubmit(int argc, char** argv) {
  Parse(argc, argv, "caliber submit --model URI --calib URI --out URI [--method gptq_lora] [--wait] ...");
  absl::StatusOr<ServiceClient> client = ConnectFromFlags();
  if (!client.ok()) return Report("submit", client.status());
  absl::StatusOr<v1::SubmitQuantJobRequest> request = RequestFromFlags();
  if (!request.ok()) return Report("submit", request.status());
  v1::QuantJob job;
  auto context = client->Context(120);
  if (grpc::Status s = client->stub->SubmitQuantJob(context.get(), *request, &job); !s.ok()) {
    return Report("submit", FromGrpc(s));
  }
  std::printf("%s\n", job.job_id().c_str());
  std::fflush(stdout);
  return absl::GetFlag(FLAGS_wait) ? Follow(*client, job.job_id()) : 0;
}

int RunWatch(int argc, char** argv) {
  std::vector<char*> args = Parse(argc, argv, "caliber watch JOB_ID");
  if (args.size() != 2) return Report("watch", absl::InvalidArgumentError("expected one job id"));
  absl::StatusOr<ServiceClient> client = ConnectFromFlags();
  if (!client.ok()) return Report("watch", client.status());
  return Follow(*client, args[1]);
}

int RunStatus(int argc, char** argv) {
  std::vector<char*> args = Parse(argc, argv, "caliber status JOB_ID");
  if (args.size() != 2) return Report("status", absl::InvalidArgumentError("expected one job id"));
  absl::StatusOr<ServiceClient> client = ConnectFromFlags();
  if (!client.ok()) return Report("status", client.status());
  v1::GetQuantJobRequest request;
  request.set_job_id(args[1]);
  v1::QuantJob job;
  auto context = client->Context();
  if (grpc::Status s = client->stub->GetQuantJob(context.get(), request, &job); !s.ok()) {
    return Report("status", FromGrpc(s));
  }
  std::printf("%s", JobDetails(job).c_str());
  return 0;
}

int RunList(int argc, char** argv) {
  Parse(argc, argv, "caliber list [--page-size N]");
  absl::StatusOr<ServiceClient> client = ConnectFromFlags();
  if (!client.ok()) return Report("list", client.status());
  v1::ListQuantJobsRequest request;
  request.set_page_size(absl::GetFlag(FLAGS_page_size));
  do {
    v1::ListQuantJobsResponse response;
    auto context = client->Context();
    if (grpc::Status s = client->stub->ListQuantJobs(context.get(), request, &response); !s.ok()) {
      return Report("list", FromGrpc(s));
    }
    for (const v1::QuantJob& job : response.jobs()) std::printf("%s\n", JobLine(job).c_str());
    request.set_page_token(response.next_page_token());
  } while (!request.page_token().empty());
  return 0;
}

int RunCancel(int argc, char** argv) {
  std::vector<char*> args = Parse(argc, argv, "caliber cancel JOB_ID");
  if (args.size() != 2) return Report("cancel", absl::InvalidArgumentError("expected one job id"));
  absl::StatusOr<ServiceClient> client = ConnectFromFlags();
  if (!client.ok()) return Report("cancel", client.status());
  v1::CancelQuantJobRequest request;
  request.set_job_id(args[1]);
  v1::QuantJob job;
  auto context = client->Context();
  if (grpc::Status s = client->stub->CancelQuantJob(context.get(), request, &job); !s.ok()) {
    return Report("cancel", FromGrpc(s));
  }
  std::printf("%s\n", JobLine(job).c_str());
  return 0;
}

}  // namespace caliber::cli
