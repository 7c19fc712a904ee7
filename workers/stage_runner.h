// Runs one stage assignment: a contiguous range of decoder layers of one job. Loads only those
// layers' tensors (ranged reads), gets the activations entering the range (embedding the
// calibration tokens, reading a stored boundary, or receiving the upstream worker's stream),
// quantizes layer by layer with core's QuantizeLayerRange — the same code `caliber quantize`
// runs — and after each layer stores its result (and, at checkpoints, the activations after
// it) before reporting it, so a replacement worker resumes without redoing finished layers.
// Pipelined jobs first forward the unquantized range and hand the stage's output downstream,
// so every stage calibrates concurrently.
#pragma once

#include "absl/status/status.h"
#include "caliber/v1/worker_protocol.pb.h"
#include "workers/stage_context.h"

namespace caliber::workers {

absl::Status RunStage(const v1::StageAssignment& assignment, const StageContext& context);

}  // namespace caliber::workers
