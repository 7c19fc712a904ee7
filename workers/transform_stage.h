// The transform phase of one stage (jobs with a transform, docs/methods/heroq.md): the
// range's Hessians from the unquantized model (activations in from upstream, out to
// downstream, as pipelined calibration does), then the range's R2 and diagonals learned
// together with the other stages — each round's R1 gradient share goes to the coordinator,
// which sums the stages' shares — and the learned transform stored for the coordinator to fold.
#pragma once

#include "absl/status/status.h"
#include "caliber/v1/worker_protocol.pb.h"
#include "workers/stage_context.h"

namespace caliber::workers {

absl::Status RunTransformStage(const v1::StageAssignment& assignment, const StageContext& context);

}  // namespace caliber::workers
