// The client side of the service: `caliber submit | watch | status | list | cancel` talk to a
// caliber-coordinator over gRPC (see docs/api.md). Exit codes: cli/exit_codes.h.
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/command_line.h"
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/exit_codes.h"
#include "cli/labels.h"
#include "cli/service_client.h"
#include "cli/watch_follow.h"
#include "grpcpp/grpcpp.h"
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
ABSL_FLAG(std::string, labels, "", "submit: job labels, key=value[,key=value...]");
ABSL_FLAG(std::string, request_id, "", "submit: idempotency key (default: random)");
ABSL_FLAG(int, max_workers, 0, "submit: at most this many workers (0: all)");
ABSL_FLAG(int, page_size, 50, "list: jobs per page");
ABSL_FLAG(absl::Duration, reconnect_timeout, absl::Minutes(5),
          "watch, submit --wait: how long to keep reconnecting after losing the coordinator "
          "before exiting 4 (e.g. 30s, 10m, inf; 0: give up at once)");

namespace caliber::cli {
namespace {

// Local paths become file:// URIs (absolute), URIs pass through.
std::string ToUri(const std::string& location) {
  if (location.find("://") != std::string::npos || location.empty()) return location;
  return "file://" + std::filesystem::absolute(location).lexically_normal().string();
}

int Report(const char* command, const absl::Status& s) {
  std::fprintf(stderr, "caliber %s: %s\n", command, s.ToString().c_str());
  return kExitFailed;
}

std::vector<std::string_view> ConnectionFlagsAnd(std::initializer_list<std::string_view> more) {
  std::vector<std::string_view> flags(std::begin(kConnectionFlags), std::end(kConnectionFlags));
  flags.insert(flags.end(), more);
  return flags;
}

constexpr std::string_view kClientNotes =
    "Every flag can also come from CALIBER_<FLAG> in the environment (CALIBER_COORDINATOR, ...).\n"
    "Exit codes: 0 ok (job succeeded), 1 job failed or request refused, 2 usage error, 3 job cancelled,\n"
    "4 (watch, submit --wait) no contact with the coordinator for --reconnect-timeout.";

const CommandSpec& SubmitSpec() {
  static const CommandSpec spec{
      "submit",
      "caliber submit --model URI --calib URI --out URI [--method gptq_lora] [--labels k=v,..] [--wait] ...",
      ConnectionFlagsAnd({"model", "calib", "out", "format", "nsamples", "seq_len", "seed", "calib_sampling",
                          "method", "bits", "group_size", "sym", "asym", "act_order", "static_groups", "mse",
                          "damp", "lora_rank", "refine_iters", "lora_a_bits", "act_bits", "propagation",
                          "batch_seqs", "eval_text", "eval_tokens", "eval_windows", "priority", "max_workers",
                          "labels", "request_id", "wait", "reconnect_timeout"}),
      kClientNotes};
  return spec;
}

const CommandSpec& WatchSpec() {
  static const CommandSpec spec{"watch", "caliber watch JOB_ID [--reconnect-timeout 5m]",
                                ConnectionFlagsAnd({"reconnect_timeout"}), kClientNotes};
  return spec;
}

const CommandSpec& StatusSpec() {
  static const CommandSpec spec{"status", "caliber status JOB_ID", ConnectionFlagsAnd({}), kClientNotes};
  return spec;
}

const CommandSpec& ListSpec() {
  static const CommandSpec spec{"list", "caliber list [--page-size 50]", ConnectionFlagsAnd({"page_size"}),
                                kClientNotes};
  return spec;
}

const CommandSpec& CancelSpec() {
  static const CommandSpec spec{"cancel", "caliber cancel JOB_ID", ConnectionFlagsAnd({}), kClientNotes};
  return spec;
}

// Follows the job through coordinator restarts (cli/watch_follow.h).
int Follow(const char* command, ServiceClient client, const std::string& job_id) {
  FollowOptions options;
  options.command = command;
  options.coordinator = CoordinatorAddress();
  options.reconnect_timeout = absl::GetFlag(FLAGS_reconnect_timeout);
  return FollowJob(std::move(client), ConnectFromFlags, job_id, options);
}

// --reconnect-timeout must not be negative; "" when fine.
std::string CheckReconnectTimeout() {
  if (absl::GetFlag(FLAGS_reconnect_timeout) >= absl::ZeroDuration()) return "";
  return absl::StrCat("--reconnect-timeout must be >= 0, got ",
                      absl::FormatDuration(absl::GetFlag(FLAGS_reconnect_timeout)));
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
  absl::StatusOr<std::map<std::string, std::string>> labels = ParseLabels(absl::GetFlag(FLAGS_labels));
  if (!labels.ok()) return labels.status();
  spec.mutable_labels()->insert(labels->begin(), labels->end());
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

}  // namespace

int RunSubmit(int argc, char** argv) {
  const CommandSpec& spec = SubmitSpec();
  const ParsedCommand parsed = ParseCommand(argc, argv, spec, /*env_overrides=*/true);
  if (parsed.exit_code) return *parsed.exit_code;
  if (!parsed.args.empty()) return UsageError(spec, absl::StrCat("unexpected argument '", parsed.args[0], "'"));
  if (const std::string bad = CheckReconnectTimeout(); !bad.empty()) return UsageError(spec, bad);
  // The request is checked before any connection: its errors are the command line's.
  absl::StatusOr<v1::SubmitQuantJobRequest> request = RequestFromFlags();
  if (!request.ok()) return UsageError(spec, std::string(request.status().message()));
  absl::StatusOr<ServiceClient> client = ConnectFromFlags();
  if (!client.ok()) return Report("submit", client.status());
  v1::QuantJob job;
  auto context = client->Context(120);
  if (grpc::Status s = client->stub->SubmitQuantJob(context.get(), *request, &job); !s.ok()) {
    return Report("submit", FromGrpc(s));
  }
  std::printf("%s\n", job.job_id().c_str());
  std::fflush(stdout);
  return absl::GetFlag(FLAGS_wait) ? Follow("submit", *std::move(client), job.job_id()) : kExitOk;
}

int RunWatch(int argc, char** argv) {
  const CommandSpec& spec = WatchSpec();
  const ParsedCommand parsed = ParseCommand(argc, argv, spec, /*env_overrides=*/true);
  if (parsed.exit_code) return *parsed.exit_code;
  if (parsed.args.size() != 1) return UsageError(spec, "expected one job id");
  if (const std::string bad = CheckReconnectTimeout(); !bad.empty()) return UsageError(spec, bad);
  absl::StatusOr<ServiceClient> client = ConnectFromFlags();
  if (!client.ok()) return Report("watch", client.status());
  return Follow("watch", *std::move(client), parsed.args[0]);
}

int RunStatus(int argc, char** argv) {
  const CommandSpec& spec = StatusSpec();
  const ParsedCommand parsed = ParseCommand(argc, argv, spec, /*env_overrides=*/true);
  if (parsed.exit_code) return *parsed.exit_code;
  if (parsed.args.size() != 1) return UsageError(spec, "expected one job id");
  absl::StatusOr<ServiceClient> client = ConnectFromFlags();
  if (!client.ok()) return Report("status", client.status());
  v1::GetQuantJobRequest request;
  request.set_job_id(parsed.args[0]);
  v1::QuantJob job;
  auto context = client->Context();
  if (grpc::Status s = client->stub->GetQuantJob(context.get(), request, &job); !s.ok()) {
    return Report("status", FromGrpc(s));
  }
  std::printf("%s", JobDetails(job).c_str());
  return kExitOk;
}

int RunList(int argc, char** argv) {
  const CommandSpec& spec = ListSpec();
  const ParsedCommand parsed = ParseCommand(argc, argv, spec, /*env_overrides=*/true);
  if (parsed.exit_code) return *parsed.exit_code;
  if (!parsed.args.empty()) return UsageError(spec, absl::StrCat("unexpected argument '", parsed.args[0], "'"));
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
  return kExitOk;
}

int RunCancel(int argc, char** argv) {
  const CommandSpec& spec = CancelSpec();
  const ParsedCommand parsed = ParseCommand(argc, argv, spec, /*env_overrides=*/true);
  if (parsed.exit_code) return *parsed.exit_code;
  if (parsed.args.size() != 1) return UsageError(spec, "expected one job id");
  absl::StatusOr<ServiceClient> client = ConnectFromFlags();
  if (!client.ok()) return Report("cancel", client.status());
  v1::CancelQuantJobRequest request;
  request.set_job_id(parsed.args[0]);
  v1::QuantJob job;
  auto context = client->Context();
  if (grpc::Status s = client->stub->CancelQuantJob(context.get(), request, &job); !s.ok()) {
    return Report("cancel", FromGrpc(s));
  }
  std::printf("%s\n", JobLine(job).c_str());
  return kExitOk;
}

}  // namespace caliber::cli
