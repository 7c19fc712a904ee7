#include "workers/activation_inbox.h"

#include <zlib.h>

#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "services/auth/worker_token.h"
#include "services/grpc_status.h"

namespace caliber::workers {
namespace {

uint32_t Crc32(const void* data, size_t n) {
  return static_cast<uint32_t>(crc32(0, static_cast<const Bytef*>(data), static_cast<uInt>(n)));
}

constexpr int64_t kChunkBytes = 1 << 20;

}  // namespace

grpc::Status ActivationInbox::PushActivations(grpc::ServerContext* context,
                                              grpc::ServerReader<v1::ActivationChunk>* reader,
                                              v1::PushActivationsResponse* response) {
  if (grpc::Status s = auth::CheckWorkerToken(*context, worker_token_); !s.ok()) return s;
  v1::ActivationChunk chunk;
  if (!reader->Read(&chunk)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "activation stream ended before its first chunk");
  }
  // Refused here, before the rest of the stream is read or anything allocated.
  absl::StatusOr<InboxStore::Reservation> reservation = store_.Admit(chunk);
  if (!reservation.ok()) return ToGrpc(reservation.status());
  return Receive(reader, chunk, *std::move(reservation), response);
}

grpc::Status ActivationInbox::Receive(grpc::ServerReader<v1::ActivationChunk>* reader, v1::ActivationChunk& chunk,
                                      InboxStore::Reservation reservation, v1::PushActivationsResponse* response) {
  MatrixF data;
  try {
    data.resize(chunk.total_rows(), chunk.cols());  // within the bound Admit checked
  } catch (const std::bad_alloc&) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "no memory for the pushed activations");
  }
  const std::string assignment = reservation.assignment_id();
  const int layer = reservation.layer();
  int64_t next_row = 0;
  do {
    if (chunk.assignment_id() != assignment || chunk.layer() != layer || chunk.cols() != data.cols() ||
        chunk.total_rows() != data.rows() || chunk.row_offset() != next_row) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("activation chunk out of order at row ", next_row));
    }
    const int64_t row_bytes = data.cols() * static_cast<int64_t>(sizeof(float));
    if (chunk.data().size() % static_cast<size_t>(row_bytes) != 0 ||
        next_row + static_cast<int64_t>(chunk.data().size()) / row_bytes > data.rows()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "activation chunk size does not match its rows");
    }
    if (Crc32(chunk.data().data(), chunk.data().size()) != chunk.crc32()) {
      return grpc::Status(grpc::StatusCode::DATA_LOSS, absl::StrCat("CRC-32 mismatch in chunk at row ", next_row));
    }
    if (!chunk.data().empty()) std::memcpy(data.row(next_row).data(), chunk.data().data(), chunk.data().size());
    next_row += static_cast<int64_t>(chunk.data().size()) / row_bytes;
  } while (reader->Read(&chunk));
  if (next_row != data.rows()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("activation stream ended at row ", next_row, " of ", data.rows()));
  }
  store_.Complete(std::move(reservation), std::move(data));
  response->set_rows_received(next_row);
  return grpc::Status::OK;
}

absl::StatusOr<int64_t> PushActivations(const std::shared_ptr<grpc::Channel>& channel,
                                        const std::string& job_id, const std::string& assignment_id,
                                        int layer, const MatrixF& hidden, const std::string& token) {
  std::unique_ptr<v1::WorkerService::Stub> stub = v1::WorkerService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  v1::PushActivationsResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::ActivationChunk>> writer = stub->PushActivations(&context, &response);
  const int64_t row_bytes = hidden.cols() * static_cast<int64_t>(sizeof(float));
  const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkBytes / row_bytes);
  int64_t sent = 0;
  for (int64_t r = 0; r < hidden.rows(); r += rows_per_chunk) {
    const int64_t n = std::min(rows_per_chunk, hidden.rows() - r);
    v1::ActivationChunk chunk;
    chunk.set_job_id(job_id);
    chunk.set_assignment_id(assignment_id);
    chunk.set_layer(layer);
    chunk.set_total_rows(hidden.rows());
    chunk.set_cols(static_cast<int32_t>(hidden.cols()));
    chunk.set_row_offset(r);
    chunk.set_data(reinterpret_cast<const char*>(hidden.row(r).data()), static_cast<size_t>(n * row_bytes));
    chunk.set_crc32(Crc32(chunk.data().data(), chunk.data().size()));
    if (!writer->Write(chunk)) break;  // the receiver failed; Finish() says why
    sent += n * row_bytes;
  }
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok()) {
    const absl::Status s = FromGrpc(status);
    return absl::Status(s.code(), absl::StrCat("pushing activations: ", std::string(s.message())));
  }
  return sent;
}

}  // namespace caliber::workers
