#include "services/metrics/storage_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <string>

namespace caliber::metrics {

StorageMetrics::StorageMetrics(prometheus::Registry& registry) {
  auto& requests = prometheus::BuildCounter()
                       .Name("caliber_object_store_requests_total")
                       .Help(
                           "Object store requests (each retry counts), by backend, operation "
                           "and outcome.")
                       .Register(registry);
  auto& bytes = prometheus::BuildCounter()
                    .Name("caliber_object_store_bytes_total")
                    .Help("Bytes moved by object store requests, by backend and operation.")
                    .Register(registry);
  requests_family_ = &requests;
  bytes_family_ = &bytes;
  for (size_t b = 0; b < kBackends; ++b) {
    for (size_t o = 0; o < kOps; ++o) {
      const std::string backend(kStorageBackends[b]);
      const std::string op(kStorageOps[o]);
      requests_[b][o][0] = &requests.Add({{"backend", backend}, {"op", op}, {"outcome", "ok"}});
      requests_[b][o][1] = &requests.Add({{"backend", backend}, {"op", op}, {"outcome", "error"}});
      bytes_[b][o] = &bytes.Add({{"backend", backend}, {"op", op}});
    }
  }
}

void StorageMetrics::OnRequest(std::string_view backend, std::string_view op, int64_t bytes,
                               bool error) {
  const size_t b = LabelIndex(backend, kStorageBackends);
  const size_t o = LabelIndex(op, kStorageOps);
  prometheus::Counter* request = nullptr;
  prometheus::Counter* moved = nullptr;
  if (b < kBackends && o < kOps) {
    request = requests_[b][o][error ? 1 : 0];
    moved = bytes_[b][o];
  } else {
    // Family::Add is thread-safe and returns the existing series for labels seen before.
    const std::string backend_label(CanonicalLabel(backend, kStorageBackends));
    const std::string op_label(CanonicalLabel(op, kStorageOps));
    request = &requests_family_->Add(
        {{"backend", backend_label}, {"op", op_label}, {"outcome", error ? "error" : "ok"}});
    moved = &bytes_family_->Add({{"backend", backend_label}, {"op", op_label}});
  }
  request->Increment();
  if (bytes > 0) moved->Increment(static_cast<double>(bytes));
}

}  // namespace caliber::metrics
