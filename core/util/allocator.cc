#include "core/util/allocator.h"

#include <malloc.h>

#include <mutex>

namespace caliber {

void TuneAllocatorForLargeMatrices() {
  static std::once_flag once;
  std::call_once(once, [] {
    constexpr int kOneGiB = 1 << 30;
    mallopt(M_MMAP_THRESHOLD, kOneGiB);
    mallopt(M_TRIM_THRESHOLD, kOneGiB);
  });
}

}  // namespace caliber
