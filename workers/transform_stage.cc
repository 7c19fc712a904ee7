#include "workers/transform_stage.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/model/weights.h"
#include "core/transform/stage_transform.h"
#include "core/transform/transform_codec.h"
#include "services/job_options.h"
#include "services/scratch_layout.h"
#include "workers/stage_io.h"

namespace caliber::workers {
namespace {

// The coordinator as the all-reduce: send this stage's share, poll until every stage's is in.
class CoordinatorReducer final : public ShareReducer {
 public:
  CoordinatorReducer(const v1::StageAssignment& a, const StageContext& ctx) : a_(a), ctx_(ctx) {}

  absl::StatusOr<ShareValue> Sum(int round, const ShareValue& mine) override {
    v1::ReduceTransformShareRequest request;
    request.set_worker_id(ctx_.worker_id);
    request.set_assignment_id(a_.assignment_id());
    request.set_job_id(a_.job_id());
    request.set_round(round);
    request.set_loss(mine.loss);
    request.mutable_g_r1()->Assign(mine.g_r1.data(), mine.g_r1.data() + mine.g_r1.size());
    while (true) {
      absl::StatusOr<v1::ReduceTransformShareResponse> r = ctx_.reduce(request);
      if (!r.ok()) return r.status();
      if (r->ready()) {
        if (r->g_r1_size() != mine.g_r1.size()) {
          return absl::DataLossError("the coordinator's R1 gradient sum has the wrong size");
        }
        ShareValue total;
        total.loss = r->loss();
        total.g_r1 = Eigen::Map<const MatrixD>(r->g_r1().data(), mine.g_r1.rows(), mine.g_r1.cols());
        return total;
      }
      if (Cancelled(ctx_)) return absl::CancelledError("assignment cancelled during transform learning");
    }
  }

 private:
  const v1::StageAssignment& a_;
  const StageContext& ctx_;
};

// The stage's report part as the worker's transform metrics.
metrics::TransformSummary Summarize(const nlohmann::json& report) {
  metrics::TransformSummary s;
  s.hessian_seconds = report["seconds"]["hessians"].get<double>();
  s.learning_seconds = report["seconds"]["learning"].get<double>();
  s.loss_untransformed = report["loss"]["untransformed"].get<double>();
  s.loss_start = report["loss"]["start"].get<double>();
  s.loss_learned = report["loss"]["learned"].get<double>();
  const double layers = static_cast<double>(report["layers"].size());
  for (const nlohmann::json& l : report["layers"]) {
    for (size_t m = 0; m < metrics::kLinearModules.size(); ++m) {
      // kAllLinearModules and kLinearModules list the modules in the same order.
      const nlohmann::json& e = l["modules"][std::string(LinearModuleName(kAllLinearModules[m]))];
      s.rtn_without[m] += e["rtn_rel_error_untransformed"].get<double>() / layers;
      s.rtn_with[m] += e["rtn_rel_error_transformed"].get<double>() / layers;
    }
    for (size_t i = 0; i < metrics::kLinearInputs.size(); ++i) {
      const nlohmann::json& in = l["inputs"][std::string(metrics::kLinearInputs[i])];
      auto share = [](const nlohmann::json& h) {
        const double trace = h["trace"].get<double>();
        return trace > 0 ? h["lambda_max"].get<double>() / trace : 0.0;
      };
      s.top_share_h[i] = std::max(s.top_share_h[i], share(in["h"]));
      s.top_share_ht[i] = std::max(s.top_share_ht[i], share(in["h_transformed"]));
      s.condition_h[i] = std::max(s.condition_h[i], in["h"]["damped_condition"].get<double>());
      s.condition_ht[i] = std::max(s.condition_ht[i], in["h_transformed"]["damped_condition"].get<double>());
    }
  }
  return s;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

absl::Status RunTransformStage(const v1::StageAssignment& a, const StageContext& ctx) {
  if (!ctx.reduce) return absl::InternalError("transform stage without a reducer");
  const auto start = std::chrono::steady_clock::now();
  StageModel model;
  if (absl::Status s = FetchStageModel(a, ctx, a.first_layer(), a.end_layer(), model); !s.ok()) return s;
  const ModelConfig* config = &model.config;
  const std::unique_ptr<Checkpoint>* checkpoint = &model.checkpoint;
  if (a.first_layer() < 0 || a.first_layer() >= a.end_layer() || a.end_layer() > config->num_hidden_layers ||
      a.resume_from() != a.first_layer()) {
    return absl::InvalidArgumentError("transform assignment's layer range does not fit the model");
  }
  absl::StatusOr<TransformOptions> options = TransformOptionsFromProto(a.method());
  if (!options.ok()) return options.status();

  absl::StatusOr<MatrixF> hidden = StageInput(a, ctx, *config, **checkpoint);
  if (!hidden.ok()) return hidden.status();
  absl::StatusOr<std::vector<LayerProblem>> problems = BuildLayerProblems(
      *config, **checkpoint, a.first_layer(), a.end_layer(), {a.nsamples(), a.seq_len()}, a.batch_seqs(), *hidden);
  if (!problems.ok()) return problems.status();
  if (a.end_layer() < config->num_hidden_layers) {
    const std::string uri = scratch::TransformActivationsUri(a.scratch_uri(), a.end_layer() - 1, a.assignment_id());
    if (absl::Status s = HandOffAndReportBoundary(a, ctx, *hidden, uri); !s.ok()) return s;
  }
  hidden->resize(0, 0);
  if (Cancelled(ctx)) return absl::CancelledError("assignment cancelled");

  CoordinatorReducer reducer(a, ctx);
  absl::StatusOr<StageTransform> learned = LearnStageTransform(*config, *problems, *options, &reducer, Seconds(start));
  if (!learned.ok()) return learned.status();
  if (ctx.metrics) ctx.metrics->TransformLearned(Summarize(learned->report));
  return ctx.storage->Write(scratch::StageTransformUri(a.scratch_uri(), a.assignment_id()),
                            EncodeStageTransform(*learned));
}

}  // namespace caliber::workers
