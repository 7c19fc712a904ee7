#include "coordinator/job_spec.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/formats/checkpoint_format.h"
#include "core/quant/quantizer.h"
#include "core/transform/model_transform.h"
#include "coordinator/request_limits.h"
#include "services/job_options.h"

namespace caliber::coordinator {
namespace {

absl::Status Bad(std::string_view field, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("spec.", std::string(field), ": ", std::string(why)));
}

bool OneOf(const std::string& v, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (v == a) return true;
  }
  return false;
}

}  // namespace

absl::Status NormalizeSpec(v1::QuantJobSpec& spec) {
  // Size first: nothing below quotes a field that could be large.
  if (const size_t bytes = spec.ByteSizeLong(); bytes > kMaxSpecBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec is ", bytes, " bytes serialized; at most ", kMaxSpecBytes, " are allowed"));
  }
  for (const auto& [field, uri] : {std::pair<const char*, const std::string*>{"model_uri", &spec.model_uri()},
                                   {"output_uri", &spec.output_uri()},
                                   {"calibration.uri", &spec.calibration().uri()},
                                   {"evaluation.uri", &spec.evaluation().uri()}}) {
    if (absl::Status s = CheckIdentifier(absl::StrCat("spec.", field), *uri, kMaxUriBytes); !s.ok()) return s;
  }
  if (absl::Status s = ValidateLabels(spec.labels()); !s.ok()) return s;
  if (spec.model_uri().empty()) return Bad("model_uri", "required");
  if (spec.output_uri().empty()) return Bad("output_uri", "required");
  if (spec.calibration().uri().empty()) return Bad("calibration.uri", "required");
  v1::CalibrationData& c = *spec.mutable_calibration();
  if (c.nsamples() == 0) c.set_nsamples(128);
  if (c.seq_len() == 0) c.set_seq_len(256);
  if (c.format().empty()) c.set_format("auto");
  if (c.sampling().empty()) c.set_sampling("random");
  if (c.nsamples() < 1 || c.nsamples() > 65536) return Bad("calibration.nsamples", "must be 1..65536");
  if (c.seq_len() < 1 || c.seq_len() > kMaxSeqLen) {
    return Bad("calibration.seq_len", absl::StrCat("must be 1..", kMaxSeqLen, " (0: 256), got ", c.seq_len()));
  }
  if (int64_t{c.nsamples()} * c.seq_len() > kMaxCalibrationTokens) {
    return Bad("calibration", absl::StrCat("nsamples x seq_len is ", int64_t{c.nsamples()} * c.seq_len(),
                                           " tokens; at most ", kMaxCalibrationTokens));
  }
  if (!OneOf(c.format(), {"auto", "text", "jsonl", "u32", "i32"})) {
    return Bad("calibration.format", absl::StrCat("unknown format '", c.format(), "' (auto, text, jsonl, u32, i32)"));
  }
  if (!OneOf(c.sampling(), {"random", "first"})) {
    return Bad("calibration.sampling", absl::StrCat("unknown sampling '", c.sampling(), "' (random, first)"));
  }

  v1::QuantMethod& m = *spec.mutable_method();
  if (m.name().empty()) m.set_name("gptq");
  absl::StatusOr<MethodPlan> plan = PlanMethod(m.name(), m.transform());
  if (!plan.ok()) return Bad("method.transform", std::string(plan.status().message()));
  if (FindQuantizer(plan->quantizer) == nullptr) {
    return Bad("method.name", absl::StrCat("unknown method '", m.name(), "' (available: ",
                                           absl::StrJoin(QuantizerNames(), ", "), ", heroq_gptq, heroq_gptq_lora)"));
  }
  m.set_transform(std::string(TransformKindName(plan->transform)));
  if (plan->transform == TransformKind::kNone) {
    if (m.has_transform_options()) return Bad("method.transform_options", "set without a transform");
  } else {
    v1::TransformOptions& t = *m.mutable_transform_options();
    if (!t.has_iterations()) t.set_iterations(100);
    if (!t.has_lambda()) t.set_lambda(0.05);
    if (!t.has_rotation_step()) t.set_rotation_step(0.05);
    if (!t.has_diagonal_step()) t.set_diagonal_step(0.05);
    if (!t.has_smooth_alpha()) t.set_smooth_alpha(0.5);
    if (t.start().empty()) t.set_start("best");
    absl::StatusOr<TransformOptions> options = TransformOptionsFromProto(m);
    if (!options.ok()) return Bad("method.transform_options", std::string(options.status().message()));
    if (absl::Status s = ValidateTransformOptions(*options); !s.ok()) {
      return Bad("method.transform_options", std::string(s.message()));
    }
  }
  const std::string& quantizer = plan->quantizer;
  if (m.bits() == 0) m.set_bits(4);
  if (m.group_size() == 0) m.set_group_size(128);
  if (!m.has_damp()) m.set_damp(0.01);
  if (quantizer == "gptq_lora" && m.lora_rank() == 0) m.set_lora_rank(32);
  if (quantizer != "gptq_lora") {
    if (m.lora_rank() != 0) return Bad("method.lora_rank", "only gptq_lora has a low-rank part");
    if (m.refine_iters() != 0) return Bad("method.refine_iters", "only gptq_lora refines");
  }
  if (!(m.damp() > 0) || !std::isfinite(m.damp())) {
    return Bad("method.damp", "must be positive and finite");
  }
  if (m.lora_rank() < 0 || m.lora_a_bits() < 0 || m.refine_iters() < 0) {
    return Bad("method", "lora_rank, lora_a_bits and refine_iters must be >= 0");
  }
  if (m.act_bits() == 0) m.set_act_bits(16);
  if (m.act_bits() != 16 && m.act_bits() != 8) {
    return Bad("method.act_bits", absl::StrCat("must be 16 (float activations; 0 means 16) or 8 "
                                               "(per-token dynamic INT8), got ", m.act_bits()));
  }
  // Grid checks (bits, group size vs. input widths) need the model: CheckSpecAgainstModel.
  QuantSpec probe = CalibrationOptionsOf(spec).spec;
  probe.group_size = -1;
  if (absl::Status s = Validate(probe, 1 << 20); !s.ok()) return Bad("method", std::string(s.message()));

  if (spec.propagation() == v1::PROPAGATION_UNSPECIFIED) spec.set_propagation(v1::SEQUENTIAL);
  if (spec.batch_seqs() == 0) spec.set_batch_seqs(8);
  if (spec.batch_seqs() < 1 || spec.batch_seqs() > kMaxBatchSeqs) {
    return Bad("batch_seqs", absl::StrCat("must be 1..", kMaxBatchSeqs, " (0: 8)"));
  }
  if (spec.max_workers() < 0) return Bad("max_workers", "must be >= 0");
  if (spec.has_evaluation() && !spec.evaluation().uri().empty()) {
    v1::EvaluationData& e = *spec.mutable_evaluation();
    if (e.format().empty()) e.set_format("auto");
    if (e.seq_len() == 0) e.set_seq_len(c.seq_len());
    if (e.seq_len() < 1 || e.seq_len() > kMaxSeqLen) {
      return Bad("evaluation.seq_len", absl::StrCat("must be 1..", kMaxSeqLen, " (0: the calibration seq_len), got ",
                                                    e.seq_len()));
    }
    if (e.max_windows() < 0) return Bad("evaluation.max_windows", "must be >= 0");
    if (!OneOf(e.format(), {"auto", "text", "jsonl", "u32", "i32"})) {
      return Bad("evaluation.format", absl::StrCat("unknown format '", e.format(), "'"));
    }
  } else {
    spec.clear_evaluation();
  }
  return absl::OkStatus();
}

CalibrationOptions CalibrationOptionsOf(const v1::QuantJobSpec& spec) {
  return CalibrationOptionsFromProto(spec.method(), spec.propagation(), spec.batch_seqs());
}

absl::Status CheckSpecAgainstModel(const v1::QuantJobSpec& spec, const ModelConfig& config) {
  const CalibrationOptions options = CalibrationOptionsOf(spec);
  const QuantSpec& q = options.spec;
  for (const int in : {config.hidden_size, config.q_dim(), config.intermediate_size}) {
    if (absl::Status s = Validate(q, in); !s.ok()) return Bad("method", std::string(s.message()));
  }
  // W·A8 jobs write compressed-tensors, which has its own limits (group sizes).
  if (absl::Status s = CheckCheckpointFormat(options, config); !s.ok()) {
    return Bad("method", std::string(s.message()));
  }
  if (spec.calibration().seq_len() > config.max_position_embeddings) {
    return Bad("calibration.seq_len", absl::StrCat(spec.calibration().seq_len(),
                                                   " exceeds the model's max_position_embeddings ",
                                                   config.max_position_embeddings));
  }
  if (spec.has_evaluation() && spec.evaluation().seq_len() > config.max_position_embeddings) {
    return Bad("evaluation.seq_len", "exceeds the model's max_position_embeddings");
  }
  if (config.quantized()) return absl::InvalidArgumentError("spec.model_uri: the model is already quantized");
  // The transform phase sums a hidden_size x hidden_size float64 gradient per round through
  // gRPC messages of at most 64 MiB.
  if (spec.method().transform() != "none" &&
      static_cast<int64_t>(config.hidden_size) * config.hidden_size * 8 > (int64_t{60} << 20)) {
    return Bad("method.transform", absl::StrCat("hidden_size ", config.hidden_size,
                                                " is too large for the coordinator's transform reduction "
                                                "(at most 2800: its R1 gradient travels in one gRPC message)"));
  }
  if (spec.method().transform() != "none" && config.num_attention_heads % config.num_key_value_heads != 0) {
    return Bad("method.transform", "transforms need num_attention_heads divisible by num_key_value_heads");
  }
  return absl::OkStatus();
}

}  // namespace caliber::coordinator
