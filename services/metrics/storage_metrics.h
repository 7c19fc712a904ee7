// Object-store traffic as metrics: the StorageObserver the daemons hand to
// caliber::storage::Storage (services/storage/object_store.h). Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "services/metrics/label_values.h"
#include "services/storage/object_store.h"

namespace prometheus {
class Counter;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace caliber::metrics {

class StorageMetrics : public caliber::storage::StorageObserver {
 public:
  // Registers caliber_object_store_requests_total{backend,op,outcome} and
  // caliber_object_store_bytes_total{backend,op} on `registry` (which must outlive this object).
  // backend: file|s3; op: get|head|put|delete|list; outcome: ok|error; other values: "other".
  explicit StorageMetrics(prometheus::Registry& registry);

  void OnRequest(std::string_view backend, std::string_view op, int64_t bytes, bool error) override;

 private:
  static constexpr size_t kBackends = kStorageBackends.size();
  static constexpr size_t kOps = kStorageOps.size();
  prometheus::Family<prometheus::Counter>* requests_family_ = nullptr;
  prometheus::Family<prometheus::Counter>* bytes_family_ = nullptr;
  // Series of the known label values, created up front so they read 0 before the first request
  // (rate() needs a starting point); "other" ones appear when first used.
  std::array<std::array<std::array<prometheus::Counter*, 2>, kOps>, kBackends> requests_{};
  std::array<std::array<prometheus::Counter*, kOps>, kBackends> bytes_{};
};

}  // namespace caliber::metrics
