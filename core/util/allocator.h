// Process-wide allocator tuning for workloads that allocate and free large matrices.
#pragma once

namespace caliber {

// glibc serves blocks above M_MMAP_THRESHOLD with fresh mmap()s, so every large temporary
// (activations, logits) page-faults its memory in again. Raising the threshold keeps freed
// blocks in the heap for reuse. Idempotent; called when a Model is created.
void TuneAllocatorForLargeMatrices();

}  // namespace caliber
