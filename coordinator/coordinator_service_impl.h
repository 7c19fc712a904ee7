// CoordinatorService over gRPC: the workers' side of the protocol. Workers prove themselves
// with mTLS (when configured) and/or a shared bearer token (--worker-token-file).
#pragma once

#include <string>

#include "caliber/v1/worker_protocol.grpc.pb.h"
#include "coordinator/job_manager.h"

namespace caliber::coordinator {

class CoordinatorServiceImpl final : public v1::CoordinatorService::Service {
 public:
  // `worker_token` empty: no token check.
  // Every method but ReduceTransformShare checks its request's size (kMaxWorkerReportBytes)
  // before it is parsed.
  CoordinatorServiceImpl(JobManager& jobs, std::string worker_token);

  grpc::Status RegisterWorker(grpc::ServerContext* context, const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status ReportLayerDone(grpc::ServerContext* context, const v1::ReportLayerDoneRequest* request,
                               v1::ReportAck* response) override;
  grpc::Status ReportBoundaryReady(grpc::ServerContext* context, const v1::ReportBoundaryReadyRequest* request,
                                   v1::ReportAck* response) override;
  grpc::Status ReportStageEnd(grpc::ServerContext* context, const v1::ReportStageEndRequest* request,
                              v1::ReportAck* response) override;
  grpc::Status ReduceTransformShare(grpc::ServerContext* context, const v1::ReduceTransformShareRequest* request,
                                    v1::ReduceTransformShareResponse* response) override;

 private:
  grpc::Status Check(const grpc::ServerContext& context) const;
  JobManager& jobs_;
  std::string worker_token_;
};

}  // namespace caliber::coordinator
