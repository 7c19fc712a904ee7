#include "coordinator/coordinator_service_impl.h"

#include "services/auth/worker_token.h"
#include "services/grpc_status.h"

namespace caliber::coordinator {

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
  *response = jobs_.LayerDone(*request);
  return grpc::Status::OK;
}

grpc::Status CoordinatorServiceImpl::ReportBoundaryReady(grpc::ServerContext* context,
                                                         const v1::ReportBoundaryReadyRequest* request,
                                                         v1::ReportAck* response) {
  if (grpc::Status s = Check(*context); !s.ok()) return s;
  *response = jobs_.BoundaryReady(*request);
  return grpc::Status::OK;
}

grpc::Status CoordinatorServiceImpl::ReportStageEnd(grpc::ServerContext* context,
                                                    const v1::ReportStageEndRequest* request,
                                                    v1::ReportAck* response) {
  if (grpc::Status s = Check(*context); !s.ok()) return s;
  *response = jobs_.StageEnd(*request);
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
