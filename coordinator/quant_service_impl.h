// QuantService over gRPC: authenticates every call (bearer token -> tenant) and maps the
// JobManager's absl::Status errors to gRPC status codes at this edge.
#pragma once

#include "caliber/v1/quant_service.grpc.pb.h"
#include "coordinator/job_manager.h"
#include "services/auth/tenants.h"
#include "services/grpc_status.h"

namespace caliber::coordinator {

class QuantServiceImpl final : public v1::QuantService::Service {
 public:
  QuantServiceImpl(JobManager& jobs, const auth::TenantRegistry& tenants) : jobs_(jobs), tenants_(tenants) {}

  grpc::Status SubmitQuantJob(grpc::ServerContext* context, const v1::SubmitQuantJobRequest* request,
                              v1::QuantJob* response) override;
  grpc::Status GetQuantJob(grpc::ServerContext* context, const v1::GetQuantJobRequest* request,
                           v1::QuantJob* response) override;
  grpc::Status ListQuantJobs(grpc::ServerContext* context, const v1::ListQuantJobsRequest* request,
                             v1::ListQuantJobsResponse* response) override;
  grpc::Status WatchQuantJob(grpc::ServerContext* context, const v1::WatchQuantJobRequest* request,
                             grpc::ServerWriter<v1::QuantJobEvent>* writer) override;
  grpc::Status CancelQuantJob(grpc::ServerContext* context, const v1::CancelQuantJobRequest* request,
                              v1::QuantJob* response) override;

 private:
  JobManager& jobs_;
  const auth::TenantRegistry& tenants_;
};

}  // namespace caliber::coordinator
