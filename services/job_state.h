// Facts about a job's state shared by the coordinator and the `caliber` client.
#pragma once

#include "caliber/v1/quant_service.pb.h"

namespace caliber {

// SUCCEEDED, FAILED and CANCELLED: the job will not change again.
inline bool IsTerminal(v1::JobState s) { return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED; }

}  // namespace caliber
