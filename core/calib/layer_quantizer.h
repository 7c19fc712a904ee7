// Calibrates and quantizes one decoder layer, GPTQ-style: "true sequential" module groups in
// order (q,k,v) -> o -> (gate,up) -> down. For each group the calibration batches run through
// the layer (with the groups before it already quantized), the Hessian of the group's input
// is accumulated, and each module of the group is quantized. Then the calibration
// activations are propagated to feed the next layer. For W·A8 jobs (act_bits 8) every linear
// input is fake-quantized per token first (core/quant/act_quant.h), in the Hessian passes and
// in propagation alike, so the quantizer sees the inputs the served model computes with.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/decoder_layer.h"
#include "core/quant/hessian.h"
#include "core/quant/quant_spec.h"
#include "core/quant/quantized_linear.h"

namespace caliber {

enum class Propagation {
  // Each layer's inputs come from the already-quantized layers before it (GPTQ's default,
  // best quality), and each group's Hessian from the layer with earlier groups quantized.
  kQuantized,
  // Every layer's inputs and every Hessian come from the unquantized model, so all layers
  // can accumulate at once (what pipelined distributed runs do).
  kFp,
};
absl::StatusOr<Propagation> ParsePropagation(std::string_view name);  // "quantized", "fp"
std::string_view PropagationName(Propagation p);

struct CalibrationOptions {
  std::string method = "gptq";  // a name from FindQuantizer()
  QuantSpec spec;
  Propagation propagation = Propagation::kQuantized;
  HessianAccumulator::Precision hessian_precision = HessianAccumulator::Precision::kFloat32;
  int batch_seqs = 8;  // calibration sequences per forward pass
  // 16: float activations (W·A16, bit-identical to a run without activation quantization);
  // 8: per-token dynamic INT8 at every linear input (W·A8). Anything else is InvalidArgument.
  int act_bits = 16;
};

struct ModuleQuantResult {
  LinearModule module;
  QuantizedLinear quantized;
  double hessian_trace = 0;
  double hessian_top_eigenvalue = 0;
  int64_t hessian_tokens = 0;
};

struct LayerQuantResult {
  int layer = 0;
  std::vector<ModuleQuantResult> modules;  // checkpoint order q, k, v, o, gate, up, down
  double seconds = 0;
};

// `hidden` holds the layer's calibration inputs [nsamples*seq_len x hidden_size] and on return
// its outputs (through the quantized layer under kQuantized, the original one under kFp).
// `weights` are replaced by what the quantized checkpoint computes (Q + B·A).
absl::StatusOr<LayerQuantResult> QuantizeLayer(const ModelConfig& config, const RopeTable& rope,
                                               int layer, LayerWeights& weights,
                                               const CalibrationOptions& options,
                                               const SequenceBatch& samples, MatrixF& hidden);

// Replaces each module's weights by what its quantized result computes (Q + B·A).
absl::Status ApplyLayerResult(const LayerQuantResult& result, LayerWeights& weights);

// Runs the calibration inputs through the layer as it is (no weight quantization; linear
// inputs fake-quantized at `act_bits`): exactly the propagation QuantizeLayer does, batch for
// batch, so results are bit-identical. Used to replay layers that are already quantized
// (resumed jobs) and to forward activations early.
absl::Status PropagateLayer(const ModelConfig& config, const RopeTable& rope, int layer,
                            const LayerWeights& weights, const SequenceBatch& samples,
                            int batch_seqs, int act_bits, MatrixF& hidden);

}  // namespace caliber
