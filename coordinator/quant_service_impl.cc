#include "coordinator/quant_service_impl.h"

#include "absl/strings/str_cat.h"
#include "coordinator/request_limits.h"
#include "services/runtime/sized_unary.h"

namespace caliber::coordinator {

QuantServiceImpl::QuantServiceImpl(JobManager& jobs, const auth::TenantRegistry& tenants, JobWatchers& watchers)
    : jobs_(jobs), tenants_(tenants), watchers_(watchers) {
  const std::string service = v1::QuantService::service_full_name();
  MarkMethodStreamed(runtime::MethodIndex(service, "SubmitQuantJob"),
                     runtime::SizedUnary<v1::SubmitQuantJobRequest, v1::QuantJob>(
                         "SubmitQuantJob", kMaxSubmitRequestBytes,
                         [this](auto* c, auto* req, auto* resp) { return SubmitQuantJob(c, req, resp); }));
  MarkMethodStreamed(runtime::MethodIndex(service, "GetQuantJob"),
                     runtime::SizedUnary<v1::GetQuantJobRequest, v1::QuantJob>(
                         "GetQuantJob", kMaxSmallRequestBytes,
                         [this](auto* c, auto* req, auto* resp) { return GetQuantJob(c, req, resp); }));
  MarkMethodStreamed(runtime::MethodIndex(service, "ListQuantJobs"),
                     runtime::SizedUnary<v1::ListQuantJobsRequest, v1::ListQuantJobsResponse>(
                         "ListQuantJobs", kMaxSmallRequestBytes,
                         [this](auto* c, auto* req, auto* resp) { return ListQuantJobs(c, req, resp); }));
  MarkMethodStreamed(runtime::MethodIndex(service, "CancelQuantJob"),
                     runtime::SizedUnary<v1::CancelQuantJobRequest, v1::QuantJob>(
                         "CancelQuantJob", kMaxSmallRequestBytes,
                         [this](auto* c, auto* req, auto* resp) { return CancelQuantJob(c, req, resp); }));
}

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
  if (const size_t n = request->ByteSizeLong(); n > kMaxSmallRequestBytes) {
    return JobWatchers::Reject(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("WatchQuantJob request is ", n, " bytes; at most ", kMaxSmallRequestBytes)));
  }
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
