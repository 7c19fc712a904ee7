#include "coordinator/quant_service_impl.h"

namespace caliber::coordinator {

// Runs `body` with the caller's tenant, or answers UNAUTHENTICATED.
#define CALIBER_AUTHENTICATE(tenant_var)                                          \
  absl::StatusOr<const auth::Tenant*> tenant_var = auth::AuthenticateCall(tenants_, *context); \
  if (!tenant_var.ok()) return ToGrpc(tenant_var.status())

grpc::Status QuantServiceImpl::SubmitQuantJob(grpc::ServerContext* context,
                                              const v1::SubmitQuantJobRequest* request,
                                              v1::QuantJob* response) {
  CALIBER_AUTHENTICATE(tenant);
  absl::StatusOr<v1::QuantJob> job = jobs_.Submit(**tenant, *request);
  if (!job.ok()) return ToGrpc(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status QuantServiceImpl::GetQuantJob(grpc::ServerContext* context, const v1::GetQuantJobRequest* request,
                                           v1::QuantJob* response) {
  CALIBER_AUTHENTICATE(tenant);
  absl::StatusOr<v1::QuantJob> job = jobs_.Get(**tenant, request->job_id());
  if (!job.ok()) return ToGrpc(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status QuantServiceImpl::ListQuantJobs(grpc::ServerContext* context, const v1::ListQuantJobsRequest* request,
                                             v1::ListQuantJobsResponse* response) {
  CALIBER_AUTHENTICATE(tenant);
  absl::StatusOr<v1::ListQuantJobsResponse> out = jobs_.List(**tenant, request->page_size(), request->page_token());
  if (!out.ok()) return ToGrpc(out.status());
  *response = *std::move(out);
  return grpc::Status::OK;
}

grpc::ServerWriteReactor<v1::QuantJobEvent>* QuantServiceImpl::WatchQuantJob(
    grpc::CallbackServerContext* context, const v1::WatchQuantJobRequest* request) {
  absl::StatusOr<const auth::Tenant*> tenant = auth::AuthenticateCall(tenants_, *context);
  if (!tenant.ok()) return JobWatchers::Reject(ToGrpc(tenant.status()));
  // Another tenant's job is NotFound, like an unknown id.
  return watchers_.Watch(request->job_id(), [this, t = *tenant, &id = request->job_id()](int64_t* version) {
    return jobs_.Get(*t, id, version);
  });
}

grpc::Status QuantServiceImpl::CancelQuantJob(grpc::ServerContext* context, const v1::CancelQuantJobRequest* request,
                                              v1::QuantJob* response) {
  CALIBER_AUTHENTICATE(tenant);
  absl::StatusOr<v1::QuantJob> job = jobs_.Cancel(**tenant, request->job_id());
  if (!job.ok()) return ToGrpc(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

#undef CALIBER_AUTHENTICATE

}  // namespace caliber::coordinator
