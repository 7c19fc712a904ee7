#include "coordinator/coordinator_service_impl.h"

#include <openssl/crypto.h>

namespace caliber::coordinator {

grpc::Status CoordinatorServiceImpl::Check(const grpc::ServerContext& context) const {
  if (worker_token_.empty()) return grpc::Status::OK;
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  const std::string expected = "Bearer " + worker_token_;
  if (it == md.end() || it->second.size() != expected.size() ||
      CRYPTO_memcmp(it->second.data(), expected.data(), expected.size()) != 0) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong worker token");
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorServiceImpl::RegisterWorker(grpc::ServerContext* context,
                                                    const v1::RegisterWorkerRequest* request,
                                                    v1::RegisterWorkerResponse* response) {
  if (grpc::Status s = Check(*context); !s.ok()) return s;
  if (request->worker_id().empty() || request->address().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "worker_id and address are required");
  }
  *response = jobs_.RegisterWorker(*request);
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

}  // namespace caliber::coordinator
