// WorkerService.PushActivations over a real gRPC server on 127.0.0.1: a complete stream is
// kept bit-exactly; a missing or wrong worker token (or two "authorization" entries), a
// corrupted chunk, an out-of-order chunk, a push no stage here waits for, an absurd declared
// shape and a push beyond the byte bound are each refused with their precise status and leave
// nothing in the inbox; what nobody takes expires (a fake clock) or goes with its assignment.
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
  explicit InboxServer(const std::string& token, InboxLimits limits = {},
                       InboxStore::Clock clock = [] { return absl::Now(); })
      : inbox_(token, limits, std::move(clock)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&inbox_);
    server_ = builder.BuildAndStart();
  }
  // A stage here waits for `rows` x `cols` activations of assignment a1 after layer 3.
  void Expect(int64_t rows, int64_t cols = 0) { inbox_.store().Expect("a1", 3, rows, cols); }
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
                     const std::string& token, const std::string& second_token = "") {
  auto stub = v1::WorkerService::NewStub(channel);
  grpc::ClientContext context;
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  if (!second_token.empty()) context.AddMetadata("authorization", "Bearer " + second_token);
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
  server.Expect(600, 1024);
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
  server.Expect(4);
  for (const std::string token : {"", "wrong", "s3cret-but-longer", "s3cre", "s3cres"}) {
    absl::StatusOr<int64_t> r = PushActivations(server.Channel(), "job", "a1", 3, m, token);
    ASSERT_FALSE(r.ok()) << token;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();
  }
  EXPECT_FALSE(server.inbox().Take("a1", 3).has_value());
}

TEST(ActivationInboxTest, NoTokenConfiguredAcceptsAnyCaller) {
  InboxServer server("");
  server.Expect(4);
  ASSERT_TRUE(PushActivations(server.Channel(), "job", "a1", 3, RandomActivations(4, 8), "").ok());
  EXPECT_TRUE(server.inbox().Take("a1", 3).has_value());
}

TEST(ActivationInboxTest, CorruptChunkIsDataLossAndDropped) {
  InboxServer server("t");
  const MatrixF m = RandomActivations(8, 16);
  server.Expect(8);
  std::vector<v1::ActivationChunk> chunks = {Chunk(m, 0, 4), Chunk(m, 4, 4)};
  chunks[1].mutable_data()->at(5) ^= 0x01;
  grpc::Status s = SendRaw(server.Channel(), chunks, "t");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  EXPECT_FALSE(server.inbox().Take("a1", 3).has_value());
}

TEST(ActivationInboxTest, OutOfOrderOrShortStreamIsInvalidArgument) {
  InboxServer server("t");
  const MatrixF m = RandomActivations(8, 16);
  server.Expect(8);
  grpc::Status skipped = SendRaw(server.Channel(), {Chunk(m, 4, 4), Chunk(m, 0, 4)}, "t");
  EXPECT_EQ(skipped.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << skipped.error_message();
  grpc::Status short_stream = SendRaw(server.Channel(), {Chunk(m, 0, 4)}, "t");
  EXPECT_EQ(short_stream.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << short_stream.error_message();
  EXPECT_FALSE(server.inbox().Take("a1", 3).has_value());
}

TEST(ActivationInboxTest, TwoAuthorizationEntriesAreRefusedWhateverTheyHold) {
  InboxServer server("t");
  const MatrixF m = RandomActivations(4, 8);
  server.Expect(4);
  for (const auto& [first, second] : std::vector<std::pair<std::string, std::string>>{
           {"t", "wrong"}, {"wrong", "t"}, {"t", "t"}}) {
    grpc::Status s = SendRaw(server.Channel(), {Chunk(m, 0, 4)}, first, second);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << first << "," << second;
    EXPECT_EQ(s.error_message(), "more than one \"authorization\" metadata entry");
  }
  EXPECT_EQ(server.inbox().store().bytes_held(), 0);
}

TEST(ActivationInboxTest, PushNoStageWaitsForIsRefusedUpFront) {
  InboxServer server("t");
  const MatrixF m = RandomActivations(8, 16);
  grpc::Status unknown = SendRaw(server.Channel(), {Chunk(m, 0, 8)}, "t");
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << unknown.error_message();
  EXPECT_NE(unknown.error_message().find("no stage on this worker waits for activations of assignment a1"),
            std::string::npos)
      << unknown.error_message();
  server.inbox().store().Expect("a1", 2, 8, 16);  // another layer
  grpc::Status layer = SendRaw(server.Channel(), {Chunk(m, 0, 8)}, "t");
  EXPECT_EQ(layer.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << layer.error_message();
  server.inbox().store().Expect("a1", 3, 9, 16);  // other rows
  grpc::Status rows = SendRaw(server.Channel(), {Chunk(m, 0, 8)}, "t");
  EXPECT_EQ(rows.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << rows.error_message();
  EXPECT_EQ(rows.error_message(), "activation stream declares 8 rows; assignment a1 needs 9");
  server.inbox().store().Expect("a1", 3, 8, 32);  // another hidden size
  grpc::Status cols = SendRaw(server.Channel(), {Chunk(m, 0, 8)}, "t");
  EXPECT_EQ(cols.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << cols.error_message();
  EXPECT_EQ(cols.error_message(), "activation stream declares 16 columns; the model's hidden size is 32");
  server.inbox().store().Forget("a1");  // the stage got its input from the store
  grpc::Status ended = SendRaw(server.Channel(), {Chunk(m, 0, 8)}, "t");
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << ended.error_message();
  EXPECT_EQ(server.inbox().store().bytes_held(), 0);
}

TEST(ActivationInboxTest, AbsurdDeclaredShapeIsInvalidArgumentBeforeAllocating) {
  InboxServer server("t");
  server.inbox().store().Expect("a1", 3, int64_t{1} << 31, 4096);
  const MatrixF m = RandomActivations(1, 4096);
  v1::ActivationChunk c = Chunk(m, 0, 1);
  c.set_total_rows(int64_t{1} << 31);  // 32 TiB of floats
  grpc::Status s = SendRaw(server.Channel(), {c}, "t");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("declares 2147483648 x 4096 floats (35184372088832 bytes), more than"),
            std::string::npos)
      << s.error_message();
  for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int>>{
           {0, 16}, {-1, 16}, {(int64_t{1} << 31) + 1, 1}, {4, 0}, {4, -5}, {4, (1 << 20) + 1}}) {
    c.set_total_rows(rows);
    c.set_cols(cols);
    grpc::Status bad = SendRaw(server.Channel(), {c}, "t");
    EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << rows << "x" << cols;
  }
  EXPECT_EQ(server.inbox().store().bytes_held(), 0);
}

TEST(ActivationInboxTest, PushesBeyondTheByteBoundAreResourceExhausted) {
  InboxLimits limits;
  limits.max_bytes = 8 * 16 * 4 + 100;  // one 8 x 16 push fits, two do not
  InboxServer server("t", limits);
  const MatrixF m = RandomActivations(8, 16);
  server.inbox().store().Expect("a1", 3, 8, 16);
  server.inbox().store().Expect("a2", 3, 8, 16);
  ASSERT_TRUE(PushActivations(server.Channel(), "job", "a1", 3, m, "t").ok());
  absl::StatusOr<int64_t> second = PushActivations(server.Channel(), "job", "a2", 3, m, "t");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted) << second.status();
  EXPECT_EQ(server.inbox().store().bytes_held(), 8 * 16 * 4);
  ASSERT_TRUE(server.inbox().Take("a1", 3).has_value());  // taken: room again
  EXPECT_TRUE(PushActivations(server.Channel(), "job", "a2", 3, m, "t").ok());
  const MatrixF big = RandomActivations(16, 16);
  server.inbox().store().Expect("a3", 3, 16, 16);
  absl::StatusOr<int64_t> too_big = PushActivations(server.Channel(), "job", "a3", 3, big, "t");
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kInvalidArgument) << too_big.status();
}

TEST(ActivationInboxTest, UnclaimedPushExpiresAfterTheTtl) {
  absl::Mutex mu;
  absl::Time now = absl::FromUnixSeconds(1000);
  InboxLimits limits;
  limits.ttl = absl::Seconds(30);
  InboxServer server("t", limits, [&] {
    absl::MutexLock lock(&mu);
    return now;
  });
  const MatrixF m = RandomActivations(8, 16);
  server.Expect(8, 16);
  ASSERT_TRUE(PushActivations(server.Channel(), "job", "a1", 3, m, "t").ok());
  EXPECT_EQ(server.inbox().store().bytes_held(), 8 * 16 * 4);
  {
    absl::MutexLock lock(&mu);
    now += absl::Seconds(29);
  }
  server.inbox().store().Sweep();
  EXPECT_EQ(server.inbox().store().bytes_held(), 8 * 16 * 4);
  {
    absl::MutexLock lock(&mu);
    now += absl::Seconds(1);
  }
  server.inbox().store().Sweep();
  EXPECT_EQ(server.inbox().store().bytes_held(), 0);
  EXPECT_EQ(server.inbox().store().expired(), 1);
  EXPECT_FALSE(server.inbox().Take("a1", 3).has_value());
}

TEST(ActivationInboxTest, ForgettingAnAssignmentDropsItsPush) {
  InboxServer server("t");
  const MatrixF m = RandomActivations(8, 16);
  server.Expect(8, 16);
  ASSERT_TRUE(PushActivations(server.Channel(), "job", "a1", 3, m, "t").ok());
  server.inbox().store().Forget("a1");  // the assignment ended or moved
  EXPECT_EQ(server.inbox().store().bytes_held(), 0);
  EXPECT_FALSE(server.inbox().Take("a1", 3).has_value());
}

}  // namespace
}  // namespace caliber::workers
