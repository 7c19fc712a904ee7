#include "workers/stage_io.h"

#include <chrono>
#include <filesystem>
#include <cstring>
#include <thread>

#include "core/calib/model_quantizer.h"
#include "core/formats/layer_result_codec.h"
#include "services/scratch_layout.h"
#include "services/storage/model_fetch.h"

namespace caliber::workers {
namespace {

constexpr std::chrono::seconds kPushNotYetHeldRetry{5};

}  // namespace

StageModel::~StageModel() {
  if (dir.empty()) return;
  checkpoint.reset();  // unmap before removing the files
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

absl::Status FetchStageModel(const v1::StageAssignment& a, const StageContext& ctx, int first, int end,
                             StageModel& out) {
  out.dir = (std::filesystem::path(ctx.work_dir) / a.assignment_id()).string();
  const std::string model_dir = (std::filesystem::path(out.dir) / "model").string();
  storage::ModelFetchOptions fetch;
  fetch.want = storage::LayerTensors(first, end, first == 0);
  absl::StatusOr<storage::ModelFetchStats> fetched = storage::FetchModel(*ctx.storage, a.model_uri(), model_dir, fetch);
  if (!fetched.ok()) return fetched.status();
  absl::StatusOr<ModelConfig> config = ModelConfig::FromFile(model_dir + "/config.json");
  if (!config.ok()) return config.status();
  out.config = *std::move(config);
  absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(model_dir);
  if (!checkpoint.ok()) return checkpoint.status();
  out.checkpoint = *std::move(checkpoint);
  return absl::OkStatus();
}

absl::StatusOr<MatrixF> StageInput(const v1::StageAssignment& a, const StageContext& ctx,
                                   const ModelConfig& config, const Checkpoint& checkpoint) {
  const Eigen::Index rows = static_cast<Eigen::Index>(a.nsamples()) * a.seq_len();
  if (a.resume_from() == 0) {
    absl::StatusOr<std::string> bytes = ctx.storage->Read(scratch::CalibTokensUri(a.scratch_uri()));
    if (!bytes.ok()) return bytes.status();
    if (bytes->size() != static_cast<size_t>(rows) * sizeof(int32_t)) {
      return absl::DataLossError("calibration tokens object has the wrong size");
    }
    CalibrationSet calib;
    calib.nsamples = a.nsamples();
    calib.seq_len = a.seq_len();
    calib.tokens.resize(static_cast<size_t>(rows));
    std::memcpy(calib.tokens.data(), bytes->data(), bytes->size());
    return EmbedCalibrationTokens(config, checkpoint, calib);
  }
  const int after = a.resume_from() - 1;
  std::string uri = a.input_uri();
  // Pushes are admitted only while this stage waits (the worker agent opened the inbox for it
  // when the assignment arrived; now the hidden size is known too), and refused once it has
  // its input either way.
  if (uri.empty()) ctx.inbox->store().Expect(a.assignment_id(), after, rows, config.hidden_size);
  struct Close {
    const StageContext& ctx;
    const std::string& id;
    ~Close() { ctx.inbox->store().Forget(id); }
  } close{ctx, a.assignment_id()};
  while (true) {
    if (uri.empty()) {
      if (std::optional<MatrixF> pushed = ctx.inbox->Take(a.assignment_id(), after)) {
        if (pushed->rows() != rows || pushed->cols() != config.hidden_size) {
          return absl::DataLossError("pushed activations have the wrong shape");
        }
        if (ctx.metrics) ctx.metrics->ActivationBytes("received", static_cast<double>(pushed->size() * 4));
        return *std::move(pushed);
      }
      uri = ctx.input_ready();
    }
    if (!uri.empty()) {
      absl::StatusOr<std::string> bytes = ctx.storage->Read(uri);
      if (!bytes.ok()) return bytes.status();
      return DecodeActivations(*bytes, after, rows, config.hidden_size);
    }
    if (Cancelled(ctx)) return absl::CancelledError("assignment cancelled while waiting for its input");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

absl::Status HandOffBoundary(const v1::StageAssignment& a, const StageContext& ctx, const MatrixF& out,
                             const std::string& uri) {
  if (absl::Status s = ctx.storage->Write(uri, EncodeActivations(a.end_layer() - 1, out)); !s.ok()) return s;
  if (!a.downstream_address().empty() && ctx.channel_to) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = ctx.channel_to(a.downstream_address());
    absl::StatusOr<int64_t> sent = absl::StatusOr<int64_t>(absl::UnknownError("not pushed"));
    if (!channel.ok()) sent = channel.status();
    // FAILED_PRECONDITION: the downstream worker does not (yet) wait for this assignment. It
    // learns its assignments from its heartbeats (every 500 ms by default), so a fast upstream
    // stage may get here first: ask again for 5 s, then leave it to the stored copy
    // (already written above), e.g. when the downstream stage moved meanwhile.
    const auto give_up = std::chrono::steady_clock::now() + kPushNotYetHeldRetry;
    while (channel.ok()) {
      sent = PushActivations(*channel, a.job_id(), a.downstream_assignment_id(), a.end_layer() - 1, out,
                             ctx.push_token);
      if (sent.ok() || sent.status().code() != absl::StatusCode::kFailedPrecondition || Cancelled(ctx) ||
          std::chrono::steady_clock::now() >= give_up) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (sent.ok() && ctx.metrics) ctx.metrics->ActivationBytes("sent", static_cast<double>(*sent));
    if (!sent.ok()) {
      std::fprintf(stderr, "caliber-worker: push to %s failed (%s); the next stage reads the stored copy\n",
                   a.downstream_address().c_str(), sent.status().ToString().c_str());
    }
  }
  return absl::OkStatus();
}

absl::Status HandOffAndReportBoundary(const v1::StageAssignment& a, const StageContext& ctx, const MatrixF& out,
                                      const std::string& uri) {
  if (absl::Status s = HandOffBoundary(a, ctx, out, uri); !s.ok()) return s;
  v1::ReportBoundaryReadyRequest r;
  r.set_worker_id(ctx.worker_id);
  r.set_assignment_id(a.assignment_id());
  r.set_job_id(a.job_id());
  r.set_layer(a.end_layer() - 1);
  r.set_activations_uri(uri);
  return ctx.report_boundary(r).status();
}

}  // namespace caliber::workers
