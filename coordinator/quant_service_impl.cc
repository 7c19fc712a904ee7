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

grpc::Status QuantServiceImpl::WatchQuantJob(grpc::ServerContext* context, const v1::WatchQuantJobRequest* request,
                                             grpc::ServerWriter<v1::QuantJobEvent>* writer) {
  CALIBER_AUTHENTICATE(tenant);
  int64_t version = -1, written = -1;
  while (!context->IsCancelled()) {
    // Wake at least every second to notice a client that went away.
    absl::StatusOr<v1::QuantJob> job =
        jobs_.WaitForUpdate(**tenant, request->job_id(), version, absl::Now() + absl::Seconds(1), &version);
    if (!job.ok()) return ToGrpc(job.status());
    if (version == written) continue;  // nothing new: the wait just timed out
    written = version;
    v1::QuantJobEvent event;
    *event.mutable_job() = *job;
    if (!writer->Write(event)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    const v1::JobState s = job->state();
    if (s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED) return grpc::Status::OK;
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
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
