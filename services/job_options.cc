#include "services/job_options.h"

namespace caliber {

CalibrationOptions CalibrationOptionsFromProto(const v1::QuantMethod& m, v1::Propagation propagation,
                                               int batch_seqs) {
  CalibrationOptions o;
  o.method = m.name();
  o.spec.bits = m.bits();
  o.spec.group_size = m.group_size();
  o.spec.sym = !m.asym();
  o.spec.act_order = m.act_order();
  o.spec.static_groups = m.static_groups();
  o.spec.mse = m.mse();
  o.spec.damp = m.damp();
  o.spec.lora_rank = m.lora_rank();
  o.spec.lora_a_bits = m.lora_a_bits();
  o.spec.refine_iters = m.refine_iters();
  o.propagation = propagation == v1::PIPELINED ? Propagation::kFp : Propagation::kQuantized;
  o.batch_seqs = batch_seqs;
  o.act_bits = m.act_bits() == 0 ? 16 : m.act_bits();
  return o;
}

}  // namespace caliber
