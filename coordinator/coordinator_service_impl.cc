#include "coordinator/coordinator_service_impl.h"

#include "services/auth/worker_token.h"
#include "coordinator/request_limits.h"
#include "services/grpc_status.h"
#include "services/runtime/sized_unary.h"

namespace caliber::coordinator {

CoordinatorServiceImpl::CoordinatorServiceImpl(JobManager& jobs, std::string worker_token)
    : jobs_(jobs), worker_token_(std::move(worker_token)) {
  const std::string service = v1::CoordinatorService::service_full_name();
  MarkMethodStreamed(runtime::MethodIndex(service, "RegisterWorker"),
                     runtime::SizedUnary<v1::RegisterWorkerRequest, v1::RegisterWorkerResponse>(
                         "RegisterWorker", kMaxWorkerReportBytes,
                         [this](auto* c, auto* req, auto* resp) { return RegisterWorker(c, req, resp); }));
  MarkMethodStreamed(runtime::MethodIndex(service, "Heartbeat"),
                     runtime::SizedUnary<v1::HeartbeatRequest, v1::HeartbeatResponse>(
                         "Heartbeat", kMaxWorkerReportBytes,
                         [this](auto* c, auto* req, auto* resp) { return Heartbeat(c, req, resp); }));
  MarkMethodStreamed(runtime::MethodIndex(service, "ReportLayerDone"),
                     runtime::SizedUnary<v1::ReportLayerDoneRequest, v1::ReportAck>(
                         "ReportLayerDone", kMaxWorkerReportBytes,
                         [this](auto* c, auto* req, auto* resp) { return ReportLayerDone(c, req, resp); }));
  MarkMethodStreamed(runtime::MethodIndex(service, "ReportBoundaryReady"),
                     runtime::SizedUnary<v1::ReportBoundaryReadyRequest, v1::ReportAck>(
                         "ReportBoundaryReady", kMaxWorkerReportBytes,
                         [this](auto* c, auto* req, auto* resp) { return ReportBoundaryReady(c, req, resp); }));
  MarkMethodStreamed(runtime::MethodIndex(service, "ReportStageEnd"),
                     runtime::SizedUnary<v1::ReportStageEndRequest, v1::ReportAck>(
                         "ReportStageEnd", kMaxWorkerReportBytes,
                         [this](auto* c, auto* req, auto* resp) { return ReportStageEnd(c, req, resp); }));
}

grpc::Status CoordinatorServiceImpl::Check(const grpc::ServerContext& context) const {
  return auth::CheckWorkerToken(context, worker_token_);
}

grpc::Status CoordinatorServiceImpl::RegisterWorker(grpc::ServerContext* context,
                                                    const v1::RegisterWorkerRequest* request,
                                                    v1::RegisterWorkerResponse* response) {
  if (grpc::Status s = Check(*context); !s.ok()) return s;
  absl::StatusOr<v1::RegisterWorkerResponse> r = jobs_.RegisterWorker(*request);
  if (!r.ok()) return ToGrpc(r.status());
  *response = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status CoordinatorServiceImpl::Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                                               v1::HeartbeatResponse* response) {
  if (grpc::Status s = Check(*context); !s.ok()) return s;
  *response = jobs_.Heartbeat(*request);
  return grpc::Status::OK;
}

grpc::Status CoordinatorServiceImpl::ReportLayerDone(grpc::ServerContext* context,
                                                     const v1::ReportLayerDoneRequest* request,
                                                     v1::ReportAck* response) {
  if (grpc::Status s = Check(*context); !s.ok()) return s;
  absl::StatusOr<v1::ReportAck> ack = jobs_.LayerDone(*request);
  if (!ack.ok()) return ToGrpc(ack.status());
  *response = *std::move(ack);
  return grpc::Status::OK;
}

grpc::Status CoordinatorServiceImpl::ReportBoundaryReady(grpc::ServerContext* context,
                                                         const v1::ReportBoundaryReadyRequest* request,
                                                         v1::ReportAck* response) {
  if (grpc::Status s = Check(*context); !s.ok()) return s;
  absl::StatusOr<v1::ReportAck> ack = jobs_.BoundaryReady(*request);
  if (!ack.ok()) return ToGrpc(ack.status());
  *response = *std::move(ack);
  return grpc::Status::OK;
}

grpc::Status CoordinatorServiceImpl::ReportStageEnd(grpc::ServerContext* context,
                                                    const v1::ReportStageEndRequest* request,
                                                    v1::ReportAck* response) {
  if (grpc::Status s = Check(*context); !s.ok()) return s;
  absl::StatusOr<v1::ReportAck> ack = jobs_.StageEnd(*request);
  if (!ack.ok()) return ToGrpc(ack.status());
  *response = *std::move(ack);
  return grpc::Status::OK;
}

grpc::Status CoordinatorServiceImpl::ReduceTransformShare(grpc::ServerContext* context,
                                                          const v1::ReduceTransformShareRequest* request,
                                                          v1::ReduceTransformShareResponse* response) {
  if (grpc::Status s = Check(*context); !s.ok()) return s;
  absl::StatusOr<v1::ReduceTransformShareResponse> r = jobs_.ReduceTransformShare(*request);
  if (!r.ok()) return ToGrpc(r.status());
  *response = *std::move(r);
  return grpc::Status::OK;
}

}  // namespace caliber::coordinator
