#include "core/calib/layer_quantizer.h"

#include <array>
#include <chrono>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/calib/hessian_stats.h"
#include "core/calib/layer_hessians.h"
#include "core/quant/act_quant.h"
#include "core/quant/quantizer.h"
#include "core/util/allocator.h"

namespace caliber {
namespace {

std::vector<LinearModule> ModulesOf(LinearGroup g) {
  switch (g) {
    case LinearGroup::kQkv: return {LinearModule::kQ, LinearModule::kK, LinearModule::kV};
    case LinearGroup::kO: return {LinearModule::kO};
    case LinearGroup::kGateUp: return {LinearModule::kGate, LinearModule::kUp};
    case LinearGroup::kDown: return {LinearModule::kDown};
  }
  return {};
}

absl::Status QuantizeGroup(const LinearQuantizer& quantizer, const CalibrationOptions& options,
                           int layer, LinearGroup group, const HessianAccumulator& acc,
                           LayerWeights& weights, std::vector<ModuleQuantResult>& results) {
  const MatrixF H = acc.Finalize();
  const HessianStats stats = ComputeHessianStats(H);
  for (const LinearModule m : ModulesOf(group)) {
    LinearWeights& lin = weights.linear(m);
    absl::StatusOr<QuantizedLinear> q = quantizer.Quantize(lin.weight, H, options.spec);
    if (!q.ok()) {
      return absl::Status(q.status().code(), absl::StrCat("layer ", layer, " ", std::string(LinearModuleName(m)),
                                                          ": ", std::string(q.status().message())));
    }
    lin.weight = q->Reconstruct();
    results.push_back({m, *std::move(q), stats.trace, stats.top_eigenvalue, acc.tokens()});
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Propagation> ParsePropagation(std::string_view name) {
  if (name == "quantized" || name == "sequential") return Propagation::kQuantized;
  if (name == "fp" || name == "pipelined") return Propagation::kFp;
  return absl::InvalidArgumentError(absl::StrCat("unknown propagation '", std::string(name),
                                                 "' (quantized, fp)"));
}

std::string_view PropagationName(Propagation p) {
  return p == Propagation::kQuantized ? "quantized" : "fp";
}

absl::Status ApplyLayerResult(const LayerQuantResult& result, LayerWeights& weights) {
  for (const ModuleQuantResult& m : result.modules) {
    LinearWeights& lin = weights.linear(m.module);
    if (lin.weight.rows() != m.quantized.out_features || lin.weight.cols() != m.quantized.in_features) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer ", result.layer, " ", std::string(LinearModuleName(m.module)), ": result is ",
          m.quantized.out_features, "x", m.quantized.in_features, ", weight is ", lin.weight.rows(),
          "x", lin.weight.cols()));
    }
    lin.weight = m.quantized.Reconstruct();
  }
  return absl::OkStatus();
}

absl::Status PropagateLayer(const ModelConfig& config, const RopeTable& rope, int layer,
                            const LayerWeights& weights, const SequenceBatch& samples,
                            int batch_seqs, int act_bits, MatrixF& hidden) {
  if (absl::Status s = ValidateActBits(act_bits); !s.ok()) return s;
  if (samples.num_seqs < 1 || samples.seq_len < 1 || samples.seq_len > rope.max_positions() ||
      hidden.rows() != static_cast<Eigen::Index>(samples.num_seqs) * samples.seq_len ||
      hidden.cols() != config.hidden_size) {
    return absl::InvalidArgumentError(absl::StrCat("layer ", layer, ": activations ", hidden.rows(),
                                                   "x", hidden.cols(), " do not match ",
                                                   samples.num_seqs, " x ", samples.seq_len,
                                                   " tokens of width ", config.hidden_size));
  }
  TuneAllocatorForLargeMatrices();
  RunCalibrationBatches(config, layer, weights, rope, samples, std::max(1, batch_seqs), act_bits, hidden,
             &hidden, nullptr);
  return absl::OkStatus();
}

absl::StatusOr<LayerQuantResult> QuantizeLayer(const ModelConfig& config, const RopeTable& rope,
                                               int layer, LayerWeights& weights,
                                               const CalibrationOptions& options,
                                               const SequenceBatch& samples, MatrixF& hidden) {
  const auto start = std::chrono::steady_clock::now();
  const LinearQuantizer* quantizer = FindQuantizer(options.method);
  if (quantizer == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown method '", options.method,
                                                   "' (available: ",
                                                   absl::StrJoin(QuantizerNames(), ", "), ")"));
  }
  if (absl::Status s = ValidateActBits(options.act_bits); !s.ok()) return s;
  // Without samples every Hessian is zero, every input a "dead" column, and GPTQ would zero
  // the whole layer; a sequence longer than the RoPE table would read past it.
  if (samples.num_seqs < 1 || samples.seq_len < 1 || samples.seq_len > rope.max_positions()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer ", layer, ": need at least one calibration sequence of 1..", rope.max_positions(),
        " tokens, got ", samples.num_seqs, " x ", samples.seq_len));
  }
  if (hidden.rows() != static_cast<Eigen::Index>(samples.num_seqs) * samples.seq_len ||
      hidden.cols() != config.hidden_size) {
    return absl::InvalidArgumentError(absl::StrCat("layer ", layer, ": calibration inputs are ",
                                                   hidden.rows(), "x", hidden.cols(), ", expected ",
                                                   samples.num_seqs * samples.seq_len, "x",
                                                   config.hidden_size));
  }
  // Every batch allocates and frees activation-sized temporaries: without this (which only
  // the Model constructor did) each of them page-faults fresh mmap()ed memory in again.
  TuneAllocatorForLargeMatrices();
  const int batch_seqs = std::max(1, options.batch_seqs);
  LayerQuantResult result;
  result.layer = layer;
  std::vector<ModuleQuantResult> quantized;

  if (options.propagation == Propagation::kFp) {
    // One pass through the original layer gives every Hessian and the next layer's inputs.
    HessianTaps taps;
    for (const LinearGroup g : kAllLinearGroups) {
      taps.Want(g, LinearGroupInputWidth(config, g), options.hessian_precision);
    }
    RunCalibrationBatches(config, layer, weights, rope, samples, batch_seqs, options.act_bits, hidden, &hidden,
               &taps);
    for (const LinearGroup g : kAllLinearGroups) {
      if (absl::Status s = QuantizeGroup(*quantizer, options, layer, g, taps.Get(g), weights, quantized);
          !s.ok()) {
        return s;
      }
    }
  } else {
    for (const LinearGroup g : kAllLinearGroups) {
      HessianTaps taps;
      taps.Want(g, LinearGroupInputWidth(config, g), options.hessian_precision);
      RunCalibrationBatches(config, layer, weights, rope, samples, batch_seqs, options.act_bits, hidden, nullptr,
                 &taps);
      if (absl::Status s = QuantizeGroup(*quantizer, options, layer, g, taps.Get(g), weights, quantized);
          !s.ok()) {
        return s;
      }
    }
    RunCalibrationBatches(config, layer, weights, rope, samples, batch_seqs, options.act_bits, hidden, &hidden,
               nullptr);
  }

  // Report in checkpoint order.
  for (const LinearModule m : kAllLinearModules) {
    for (ModuleQuantResult& r : quantized) {
      if (r.module == m) result.modules.push_back(std::move(r));
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace caliber
