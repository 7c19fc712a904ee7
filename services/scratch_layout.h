// Names of a job's objects in its scratch prefix, shared by the workers that write them and
// the coordinator that reads (and deletes) them.
#pragma once

#include <string>

#include "absl/strings/str_format.h"
#include "services/storage/storage.h"

namespace caliber::scratch {

// One object per attempt: a layer computed twice (a stage moved while its old worker was
// still finishing) has two results with the same tensors but different timings; the
// coordinator keeps the first one reported.
inline std::string LayerResultUri(const std::string& scratch, int layer, const std::string& assignment_id) {
  return storage::JoinUri(scratch, absl::StrFormat("layers/layer-%05d-%s.safetensors", layer, assignment_id));
}
inline std::string ActivationsUri(const std::string& scratch, int after_layer) {
  return storage::JoinUri(scratch, absl::StrFormat("activations/after-%05d.safetensors", after_layer));
}
// Transform phase: unquantized activations after a stage's last layer, and the stage's learned
// transform, one object per assignment (a restarted phase writes new ones).
inline std::string TransformActivationsUri(const std::string& scratch, int after_layer,
                                           const std::string& assignment_id) {
  return storage::JoinUri(scratch, absl::StrFormat("transform/after-%05d-%s.safetensors", after_layer, assignment_id));
}
inline std::string StageTransformUri(const std::string& scratch, const std::string& assignment_id) {
  return storage::JoinUri(scratch, absl::StrFormat("transform/stage-%s.safetensors", assignment_id));
}
// The transformed model the quantize phase reads, and report.json's "transform" section.
inline std::string TransformedModelUri(const std::string& scratch) {
  return storage::JoinUri(scratch, "transformed-model");
}
inline std::string TransformReportUri(const std::string& scratch) {
  return storage::JoinUri(scratch, "transform/report.json");
}
inline std::string CalibTokensUri(const std::string& scratch) {
  return storage::JoinUri(scratch, "calib_tokens.i32");
}

}  // namespace caliber::scratch
