#include "core/formats/job_meta.h"

namespace caliber {

nlohmann::json QuantizationMeta(const CalibrationOptions& o, const CalibrationDraw& draw) {
  const QuantSpec& s = o.spec;
  return {{"method", o.method},
          {"bits", s.bits},
          {"group_size", s.group_size},
          {"sym", s.sym},
          {"act_order", s.act_order},
          {"static_groups", s.static_groups},
          {"mse", s.mse},
          {"damp", s.damp},
          {"lora_rank", s.lora_rank},
          {"lora_a_bits", s.lora_a_bits},
          {"refine_iters", s.refine_iters},
          {"propagation", std::string(PropagationName(o.propagation))},
          {"act_bits", o.act_bits},
          {"calib",
           {{"nsamples", draw.nsamples},
            {"seq_len", draw.seq_len},
            {"seed", draw.seed},
            {"sampling", draw.sampling}}}};
}

}  // namespace caliber
