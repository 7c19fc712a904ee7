// Per-method receive limits for synchronous unary methods, checked before the request is parsed.
//
// gRPC 1.51 has one receive limit per server: a server option, and the message-size filter
// takes no per-method service config on the server side. The coordinator's port must take a
// 64 MiB ReduceTransformShare, so a 4 KiB bound on GetQuantJob has to be this method's own. A
// method served through SizedUnary is registered in gRPC's "streamed unary" form (still on the
// sync thread pool: one read, one write): it reads the request as bytes, refuses it when it is
// over `max_bytes` (INVALID_ARGUMENT naming the method, the size and the bound; the bytes are
// never parsed, so libprotobuf never logs about them), then parses it and calls `body`, the
// method's ordinary implementation. Clients see a unary method as before.
//
// Use inside a grpc::Service subclass's constructor (MarkMethodStreamed is protected):
//   MarkMethodStreamed(MethodIndex("caliber.v1.QuantService", "GetQuantJob"),
//       SizedUnary<v1::GetQuantJobRequest, v1::QuantJob>("GetQuantJob", 4096,
//           [this](auto* c, auto* req, auto* resp) { return GetQuantJob(c, req, resp); }));
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/method_handler.h"

namespace caliber::runtime {

// The index gRPC's generated code gives `method` of `service` ("caliber.v1.QuantService"): its
// position in the .proto service. Aborts at start-up on a name that is not there (a typo).
inline int MethodIndex(const std::string& service, const std::string& method) {
  const google::protobuf::ServiceDescriptor* s =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
  const google::protobuf::MethodDescriptor* m = s == nullptr ? nullptr : s->FindMethodByName(method);
  if (m == nullptr) {
    std::fprintf(stderr, "no method %s in service %s\n", method.c_str(), service.c_str());
    std::abort();
  }
  return m->index();
}

template <class Request, class Response>
grpc::internal::MethodHandler* SizedUnary(
    std::string method, size_t max_bytes,
    std::function<grpc::Status(grpc::ServerContext*, const Request*, Response*)> body) {
  using Streamer = grpc::ServerUnaryStreamer<grpc::ByteBuffer, grpc::ByteBuffer>;
  return new grpc::internal::StreamedUnaryHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
      [method = std::move(method), max_bytes, body = std::move(body)](grpc::ServerContext* context,
                                                                       Streamer* stream) {
        grpc::ByteBuffer raw;
        if (!stream->Read(&raw)) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat(method, ": no request message"));
        }
        if (raw.Length() > max_bytes) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              absl::StrCat(method, " request is ", raw.Length(), " bytes; at most ", max_bytes));
        }
        Request request;
        if (grpc::Status s = grpc::SerializationTraits<Request>::Deserialize(&raw, &request); !s.ok()) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat(method, ": malformed request"));
        }
        Response response;
        if (grpc::Status s = body(context, &request, &response); !s.ok()) return s;
        grpc::ByteBuffer out;
        bool own = false;
        if (grpc::Status s = grpc::SerializationTraits<Response>::Serialize(response, &out, &own); !s.ok()) return s;
        stream->Write(out);
        return grpc::Status::OK;
      });
}

}  // namespace caliber::runtime
