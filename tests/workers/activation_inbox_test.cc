// WorkerService.PushActivations over a real gRPC server on 127.0.0.1: a complete stream is
// kept bit-exactly; a missing or wrong worker token, a corrupted chunk and an out-of-order
// chunk are each refused with their precise status and leave nothing in the inbox.
#include "workers/activation_inbox.h"

#include <zlib.h>

#include <cstring>
#include <memory>
#include <random>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace caliber::workers {
namespace {

class InboxServer {
 public:
  explicit InboxServer(const std::string& token) : inbox_(token) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&inbox_);
    server_ = builder.BuildAndStart();
  }
  ~InboxServer() { server_->Shutdown(); }
  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials());
  }
  ActivationInbox& inbox() { return inbox_; }

 private:
  ActivationInbox inbox_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

MatrixF RandomActivations(int rows, int cols) {
  std::mt19937 rng(7);
  std::normal_distribution<float> n;
  MatrixF m(rows, cols);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) m(i, j) = n(rng);
  }
  return m;
}

v1::ActivationChunk Chunk(const MatrixF& m, int64_t row, int64_t rows) {
  v1::ActivationChunk c;
  c.set_job_id("job");
  c.set_assignment_id("a1");
  c.set_layer(3);
  c.set_total_rows(m.rows());
  c.set_cols(m.cols());
  c.set_row_offset(row);
  const size_t bytes = static_cast<size_t>(rows * m.cols()) * sizeof(float);
  c.set_data(std::string(reinterpret_cast<const char*>(m.row(row).data()), bytes));
  c.set_crc32(static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(c.data().data()),
                                          static_cast<uInt>(bytes))));
  return c;
}

// Sends `chunks` as one stream with `token` and returns the call's status.
grpc::Status SendRaw(const std::shared_ptr<grpc::Channel>& channel, const std::vector<v1::ActivationChunk>& chunks,
                     const std::string& token) {
  auto stub = v1::WorkerService::NewStub(channel);
  grpc::ClientContext context;
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  v1::PushActivationsResponse response;
  auto writer = stub->PushActivations(&context, &response);
  for (const auto& c : chunks) {
    if (!writer->Write(c)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

TEST(ActivationInboxTest, CompleteStreamArrivesBitExact) {
  InboxServer server("s3cret");
  // 600 rows x 1024 floats = 2.3 MiB: three 1 MiB chunks.
  const MatrixF sent = RandomActivations(600, 1024);
  absl::StatusOr<int64_t> bytes = PushActivations(server.Channel(), "job", "a1", 3, sent, "s3cret");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, static_cast<int64_t>(sent.size() * sizeof(float)));
  EXPECT_FALSE(server.inbox().Take("a1", 2).has_value());  // wrong layer
  std::optional<MatrixF> got = server.inbox().Take("a1", 3);
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->rows(), sent.rows());
  EXPECT_EQ(std::memcmp(got->data(), sent.data(), sent.size() * sizeof(float)), 0);
  EXPECT_FALSE(server.inbox().Take("a1", 3).has_value());  // taken once
}

TEST(ActivationInboxTest, MissingOrWrongTokenIsUnauthenticated) {
  InboxServer server("s3cret");
  const MatrixF m = RandomActivations(4, 8);
  for (const std::string token : {"", "wrong", "s3cret-but-longer"}) {
    absl::StatusOr<int64_t> r = PushActivations(server.Channel(), "job", "a1", 3, m, token);
    ASSERT_FALSE(r.ok()) << token;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();
  }
  EXPECT_FALSE(server.inbox().Take("a1", 3).has_value());
}

TEST(ActivationInboxTest, NoTokenConfiguredAcceptsAnyCaller) {
  InboxServer server("");
  ASSERT_TRUE(PushActivations(server.Channel(), "job", "a1", 3, RandomActivations(4, 8), "").ok());
  EXPECT_TRUE(server.inbox().Take("a1", 3).has_value());
}

TEST(ActivationInboxTest, CorruptChunkIsDataLossAndDropped) {
  InboxServer server("t");
  const MatrixF m = RandomActivations(8, 16);
  std::vector<v1::ActivationChunk> chunks = {Chunk(m, 0, 4), Chunk(m, 4, 4)};
  chunks[1].mutable_data()->at(5) ^= 0x01;
  grpc::Status s = SendRaw(server.Channel(), chunks, "t");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  EXPECT_FALSE(server.inbox().Take("a1", 3).has_value());
}

TEST(ActivationInboxTest, OutOfOrderOrShortStreamIsInvalidArgument) {
  InboxServer server("t");
  const MatrixF m = RandomActivations(8, 16);
  grpc::Status skipped = SendRaw(server.Channel(), {Chunk(m, 4, 4), Chunk(m, 0, 4)}, "t");
  EXPECT_EQ(skipped.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << skipped.error_message();
  grpc::Status short_stream = SendRaw(server.Channel(), {Chunk(m, 0, 4)}, "t");
  EXPECT_EQ(short_stream.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << short_stream.error_message();
  EXPECT_FALSE(server.inbox().Take("a1", 3).has_value());
}

}  // namespace
}  // namespace caliber::workers
