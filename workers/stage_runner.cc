#include "workers/stage_runner.h"

#include <zlib.h>

#include <chrono>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/calib/model_quantizer.h"
#include "core/formats/layer_result_codec.h"
#include "core/model/weights.h"
#include "services/job_options.h"
#include "services/scratch_layout.h"
#include "workers/stage_io.h"

namespace caliber::workers {
namespace {

uint32_t Crc32(const std::string& s) {
  return static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

}  // namespace

absl::Status RunStage(const v1::StageAssignment& a, const StageContext& ctx) {
  StageModel model;
  if (absl::Status s = FetchStageModel(a, ctx, a.resume_from(), a.end_layer(), model); !s.ok()) return s;
  const ModelConfig* config = &model.config;
  const std::unique_ptr<Checkpoint>* checkpoint = &model.checkpoint;
  if (a.first_layer() < 0 || a.end_layer() > config->num_hidden_layers || a.resume_from() > a.end_layer() ||
      a.resume_from() < 0) {
    return absl::InvalidArgumentError("assignment's layer range does not fit the model");
  }
  const CalibrationOptions options = CalibrationOptionsFromProto(a.method(), a.propagation(), a.batch_seqs());
  const SequenceBatch samples{a.nsamples(), a.seq_len()};

  absl::StatusOr<MatrixF> hidden = StageInput(a, ctx, *config, **checkpoint);
  if (!hidden.ok()) return hidden.status();

  std::map<int, LayerQuantResult> done;
  if (a.done_layer_uris_size() != a.done_layers_size()) {
    return absl::InvalidArgumentError("assignment lists done layers without their results");
  }
  for (int i = 0; i < a.done_layers_size(); ++i) {
    const int l = a.done_layers(i);
    absl::StatusOr<std::string> bytes = ctx.storage->Read(a.done_layer_uris(i));
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<LayerQuantResult> r = DecodeLayerResult(*bytes);
    if (!r.ok()) return r.status();
    done[l] = *std::move(r);
  }

  const bool has_next = a.end_layer() < config->num_hidden_layers;
  bool boundary_stored = false;
  // Stores the activations after the stage's last layer and streams them downstream (best
  // effort: if the push fails, the next stage reads the stored copy).
  const std::string boundary_uri = scratch::ActivationsUri(a.scratch_uri(), a.end_layer() - 1);
  auto hand_off = [&](const MatrixF& out) -> absl::StatusOr<std::string> {
    if (absl::Status s = HandOffBoundary(a, ctx, out, boundary_uri); !s.ok()) return s;
    boundary_stored = true;
    return boundary_uri;
  };
  // The same, for a boundary no layer report carries: tell the coordinator it is stored.
  auto hand_off_and_report = [&](const MatrixF& out) -> absl::Status {
    boundary_stored = true;
    return HandOffAndReportBoundary(a, ctx, out, boundary_uri);
  };

  // Pipelined: the next stage needs only unquantized activations, so hand them over first.
  if (options.propagation == Propagation::kFp && has_next && a.resume_from() == a.first_layer() &&
      !a.downstream_address().empty()) {
    MatrixF out = *hidden;
    const RopeTable rope(*config, samples.seq_len);
    for (int l = a.resume_from(); l < a.end_layer(); ++l) {
      absl::StatusOr<LayerWeights> w = LoadLayerWeights(*config, **checkpoint, l);
      if (!w.ok()) return w.status();
      if (absl::Status s = PropagateLayer(*config, rope, l, *w, samples, options.batch_seqs, options.act_bits, out);
          !s.ok()) {
        return s;
      }
      if (Cancelled(ctx)) return absl::CancelledError("assignment cancelled");
    }
    if (absl::Status s = hand_off_and_report(out); !s.ok()) return s;
  }

  int layers_done = static_cast<int>(a.done_layers_size()) + (a.resume_from() - a.first_layer());
  const int layers_total = a.end_layer() - a.first_layer();
  if (ctx.metrics) ctx.metrics->SetStageProgress(layers_done, layers_total);
  MatrixF& h = *hidden;
  const int interval = std::max(0, a.checkpoint_interval());
  absl::Status status = QuantizeLayerRange(
      *config, **checkpoint, options, samples, a.resume_from(), a.end_layer(), done, h,
      [&](const LayerQuantResult& layer) -> absl::Status {
        // A finished layer is always stored and reported, even when cancelled meanwhile
        // (SIGTERM): that is the in-flight work worth keeping.
        const std::string bytes = EncodeLayerResult(layer);
        v1::ReportLayerDoneRequest r;
        r.set_worker_id(ctx.worker_id);
        r.set_assignment_id(a.assignment_id());
        r.set_job_id(a.job_id());
        r.set_layer(layer.layer);
        r.set_result_uri(scratch::LayerResultUri(a.scratch_uri(), layer.layer, a.assignment_id()));
        r.set_result_crc32(Crc32(bytes));
        r.set_result_bytes(static_cast<int64_t>(bytes.size()));
        r.set_seconds(layer.seconds);
        r.set_tokens(static_cast<int64_t>(samples.num_seqs) * samples.seq_len);
        if (absl::Status s = ctx.storage->Write(r.result_uri(), bytes); !s.ok()) return s;
        // `h` now holds this layer's outputs: store them at checkpoints and at the stage end.
        const bool last = layer.layer == a.end_layer() - 1;
        if (last && has_next && !boundary_stored) {
          absl::StatusOr<std::string> uri = hand_off(h);
          if (!uri.ok()) return uri.status();
          r.set_activations_uri(*uri);
        } else if (!last && interval > 0 && (layer.layer - a.first_layer() + 1) % interval == 0) {
          const std::string uri = scratch::ActivationsUri(a.scratch_uri(), layer.layer);
          if (absl::Status s = ctx.storage->Write(uri, EncodeActivations(layer.layer, h)); !s.ok()) return s;
          r.set_activations_uri(uri);
        }
        double hessian_flops = 0;
        for (const ModuleQuantResult& m : layer.modules) {
          hessian_flops += static_cast<double>(m.hessian_tokens) * m.quantized.in_features * m.quantized.in_features;
          if (ctx.metrics) {
            ctx.metrics->ModuleQuantSeconds(m.quantized.report.method, LinearModuleName(m.module),
                                            m.quantized.report.seconds);
          }
        }
        r.set_hessian_flops(hessian_flops);
        absl::StatusOr<v1::ReportAck> ack = ctx.report_layer(r);
        if (!ack.ok()) return ack.status();
        if (ctx.metrics) {
          ctx.metrics->LayerDone();
          ctx.metrics->CalibrationTokens(static_cast<double>(r.tokens()));
          ctx.metrics->HessianFlops(hessian_flops);
          ctx.metrics->SetStageProgress(++layers_done, layers_total);
        }
        if (ack->stale()) return absl::CancelledError("the coordinator moved this assignment");
        if (Cancelled(ctx)) return absl::CancelledError("assignment cancelled");
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  // The last layer was replayed, not quantized: its outputs still have to reach the next stage.
  if (has_next && !boundary_stored) {
    if (absl::Status s = hand_off_and_report(h); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace caliber::workers
