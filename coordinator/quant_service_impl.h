// QuantService over gRPC: authenticates every call (bearer token -> tenant) and maps the
// JobManager's absl::Status errors to gRPC status codes at this edge.
//
// A hybrid service: WatchQuantJob is a callback-API stream (JobWatchers; a watcher costs memory,
// not a thread), the unary methods stay synchronous. Submit probes storage (model headers,
// object sizes: seconds on a slow store) and the others may wait on JobManager's mutex while it
// persists a record; on the sync pool that blocking is harmless, on gRPC's few callback
// threads it would stall every stream's writes.
#pragma once

#include "caliber/v1/quant_service.grpc.pb.h"
#include "coordinator/job_manager.h"
#include "coordinator/job_watchers.h"
#include "services/auth/tenants.h"
#include "services/grpc_status.h"

namespace caliber::coordinator {

class QuantServiceImpl final : public v1::QuantService::WithCallbackMethod_WatchQuantJob<v1::QuantService::Service> {
 public:
  // Submit, Get, List and Cancel check their request's size before it is parsed
  // (request_limits.h); Watch, a callback method, checks it after.
  QuantServiceImpl(JobManager& jobs, const auth::TenantRegistry& tenants, JobWatchers& watchers);

  grpc::Status SubmitQuantJob(grpc::ServerContext* context, const v1::SubmitQuantJobRequest* request,
                              v1::QuantJob* response) override;
  grpc::Status GetQuantJob(grpc::ServerContext* context, const v1::GetQuantJobRequest* request,
                           v1::QuantJob* response) override;
  grpc::Status ListQuantJobs(grpc::ServerContext* context, const v1::ListQuantJobsRequest* request,
                             v1::ListQuantJobsResponse* response) override;
  using WithCallbackMethod_WatchQuantJob::WatchQuantJob;  // the sync overload (unused)
  grpc::ServerWriteReactor<v1::QuantJobEvent>* WatchQuantJob(grpc::CallbackServerContext* context,
                                                             const v1::WatchQuantJobRequest* request) override;
  grpc::Status CancelQuantJob(grpc::ServerContext* context, const v1::CancelQuantJobRequest* request,
                              v1::QuantJob* response) override;

 private:
  JobManager& jobs_;
  const auth::TenantRegistry& tenants_;
  JobWatchers& watchers_;
};

}  // namespace caliber::coordinator
