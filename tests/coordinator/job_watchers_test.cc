// WatchQuantJob on gRPC's callback API (coordinator/job_watchers.h) against an in-process
// coordinator (JobManager + QuantService on 127.0.0.1, no workers: a submitted job stays
// queued until it is cancelled, which makes every stream's end deterministic).
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "coordinator/job_manager.h"
#include "coordinator/job_watchers.h"
#include "coordinator/quant_service_impl.h"
#include "gtest/gtest.h"
#include "grpcpp/grpcpp.h"
#include "services/auth/tenants.h"
#include "services/storage/storage.h"
#include "tests/coordinator/watch_swarm.h"

namespace caliber::coordinator {
namespace {
namespace fs = std::filesystem;

constexpr char kTokenA[] = "token-for-tenant-a";
constexpr char kTokenB[] = "token-for-tenant-b";
constexpr absl::Duration kPatience = absl::Seconds(120);  // a hang fails, it never passes

class WatchersTest : public ::testing::Test {
 protected:
  void SetUp() override { StartCoordinator(/*max_watchers=*/20000); }
  void TearDown() override { StopCoordinator(); }

  void StartCoordinator(int64_t max_watchers) {
    dir_ = fs::path(::testing::TempDir()) / ("job_watchers_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    storage::StorageOptions so;
    so.file_roots = {CALIBER_TESTDATA_DIR, dir_.string()};
    storage_ = *storage::Storage::Create(so);
    tenants_ = *auth::TenantRegistry::Parse(std::string(R"({"tenants": [
        {"name": "a", "tokens": [")") + kTokenA + R"("], "read_prefixes": [""], "write_prefixes": [""]},
        {"name": "b", "tokens": [")" + kTokenB + R"("], "read_prefixes": [""], "write_prefixes": [""]}]})");
    watchers_ = std::make_unique<JobWatchers>(max_watchers);
    CoordinatorOptions options;
    options.state_dir = (dir_ / "state").string();
    jobs_ = std::make_unique<JobManager>(options, *storage_, nullptr);
    jobs_->SetChangeListener([w = watchers_.get()](const v1::QuantJob& job, int64_t v) { w->Publish(job, v); });
    ASSERT_TRUE(jobs_->Start().ok());
    service_ = std::make_unique<QuantServiceImpl>(*jobs_, *tenants_, *watchers_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);
    stub_ = v1::QuantService::NewStub(grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }

  void StopCoordinator() {
    if (server_ == nullptr) return;
    watchers_->Shutdown();
    server_->Shutdown();
    jobs_->Stop();
    server_.reset();
    service_.reset();
    jobs_.reset();
    watchers_.reset();
    fs::remove_all(dir_);
  }

  std::unique_ptr<grpc::ClientContext> Context(const char* token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", std::string("Bearer ") + token);
    return ctx;
  }

  std::string SubmitAsA() {
    v1::SubmitQuantJobRequest request;
    v1::QuantJobSpec& s = *request.mutable_spec();
    const std::string model = std::string(CALIBER_TESTDATA_DIR) + "/tinyllama-en";
    s.set_model_uri("file://" + model);
    s.set_output_uri("file://" + (dir_ / "out").string());
    s.mutable_calibration()->set_uri("file://" + model + "/calib/calib_tokens.i32");
    s.mutable_calibration()->set_nsamples(16);
    s.mutable_calibration()->set_seq_len(128);
    s.mutable_method()->set_name("gptq");
    v1::QuantJob job;
    grpc::Status st = stub_->SubmitQuantJob(Context(kTokenA).get(), request, &job);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return job.job_id();
  }

  void CancelAsA(const std::string& id) {
    v1::CancelQuantJobRequest request;
    request.set_job_id(id);
    v1::QuantJob job;
    ASSERT_TRUE(stub_->CancelQuantJob(Context(kTokenA).get(), request, &job).ok());
  }

  // Open streams go to zero once every reactor's OnDone has run (shortly after the client
  // saw the status); waits for that rather than asserting a timing.
  bool AwaitNoOpenStreams() {
    const absl::Time deadline = absl::Now() + kPatience;
    while (watchers_->open_streams() != 0) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }

  fs::path dir_;
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<auth::TenantRegistry> tenants_;
  std::unique_ptr<JobWatchers> watchers_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<QuantServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::unique_ptr<v1::QuantService::Stub> stub_;
};

TEST_F(WatchersTest, SnapshotThenUpdatesThenOkAtTerminalState) {
  const std::string id = SubmitAsA();
  auto ctx = Context(kTokenA);
  v1::WatchQuantJobRequest request;
  request.set_job_id(id);
  auto reader = stub_->WatchQuantJob(ctx.get(), request);
  v1::QuantJobEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.job().job_id(), id);
  EXPECT_EQ(event.job().state(), v1::QUEUED);
  EXPECT_EQ(watchers_->open_streams(), 1);
  CancelAsA(id);
  v1::JobState last = event.job().state();
  while (reader->Read(&event)) last = event.job().state();
  EXPECT_EQ(last, v1::CANCELLED);
  grpc::Status st = reader->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(AwaitNoOpenStreams());

  // An ended job: one event, then OK.
  auto again = Context(kTokenA);
  auto reader2 = stub_->WatchQuantJob(again.get(), request);
  ASSERT_TRUE(reader2->Read(&event));
  EXPECT_EQ(event.job().state(), v1::CANCELLED);
  EXPECT_FALSE(reader2->Read(&event));
  EXPECT_TRUE(reader2->Finish().ok());
}

TEST_F(WatchersTest, OtherTenantUnknownIdAndBadTokenGetNoEvent) {
  const std::string id = SubmitAsA();
  struct Case {
    const char* token;
    std::string job_id;
    grpc::StatusCode code;
  };
  for (const Case& c : {Case{kTokenB, id, grpc::StatusCode::NOT_FOUND},
                        Case{kTokenA, "job-0000000000000000", grpc::StatusCode::NOT_FOUND},
                        Case{"not-a-token", id, grpc::StatusCode::UNAUTHENTICATED}}) {
    auto ctx = Context(c.token);
    v1::WatchQuantJobRequest request;
    request.set_job_id(c.job_id);
    auto reader = stub_->WatchQuantJob(ctx.get(), request);
    v1::QuantJobEvent event;
    EXPECT_FALSE(reader->Read(&event)) << c.token << " " << c.job_id;
    EXPECT_EQ(reader->Finish().error_code(), c.code) << c.token << " " << c.job_id;
  }
  EXPECT_TRUE(AwaitNoOpenStreams());
}

TEST_F(WatchersTest, ClientCancelUnregisters) {
  const std::string id = SubmitAsA();
  auto ctx = Context(kTokenA);
  v1::WatchQuantJobRequest request;
  request.set_job_id(id);
  auto reader = stub_->WatchQuantJob(ctx.get(), request);
  v1::QuantJobEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(watchers_->open_streams(), 1);
  ctx->TryCancel();
  while (reader->Read(&event)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(AwaitNoOpenStreams());
  CancelAsA(id);  // a change with no watcher left must be harmless
}

TEST_F(WatchersTest, ShutdownEndsStreamsUnavailable) {
  const std::string id = SubmitAsA();
  auto ctx = Context(kTokenA);
  v1::WatchQuantJobRequest request;
  request.set_job_id(id);
  auto reader = stub_->WatchQuantJob(ctx.get(), request);
  v1::QuantJobEvent event;
  ASSERT_TRUE(reader->Read(&event));
  watchers_->Shutdown();
  while (reader->Read(&event)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  // New watches are refused the same way.
  auto ctx2 = Context(kTokenA);
  auto reader2 = stub_->WatchQuantJob(ctx2.get(), request);
  EXPECT_FALSE(reader2->Read(&event));
  EXPECT_EQ(reader2->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(WatchersTest, MaxWatchersIsResourceExhausted) {
  StopCoordinator();
  StartCoordinator(/*max_watchers=*/3);
  const std::string id = SubmitAsA();
  testing::WatchSwarm swarm(address_, 1);
  swarm.Open(3, id, kTokenA);
  ASSERT_TRUE(swarm.WaitFirst(kPatience));
  EXPECT_EQ(swarm.tally().first, 3);
  swarm.Open(1, id, kTokenA);
  ASSERT_TRUE(swarm.WaitFirst(kPatience));
  EXPECT_EQ(swarm.tally().codes[grpc::StatusCode::RESOURCE_EXHAUSTED], 1);
  CancelAsA(id);
  ASSERT_TRUE(swarm.WaitDone(kPatience));
  EXPECT_EQ(swarm.tally().last_state[v1::CANCELLED], 3);
}

// Today's cost model: streams are memory, not threads. A thread per stream (the sync API)
// would put this process above 2,000 threads.
TEST_F(WatchersTest, TwoThousandWatchersOnOneJobUseABoundedNumberOfThreads) {
  constexpr int64_t kWatchers = 2000;
  const std::string id = SubmitAsA();
  testing::WatchSwarm swarm(address_, 4);
  swarm.Open(kWatchers, id, kTokenA);
  ASSERT_TRUE(swarm.WaitFirst(kPatience));
  EXPECT_EQ(swarm.tally().first, kWatchers);
  EXPECT_EQ(watchers_->open_streams(), kWatchers);
  // Server and client threads together; gRPC's pools scale with the cores, not the streams.
  const int64_t threads = testing::ProcStatus("self", "Threads");
  const int64_t bound = 100 + 4 * static_cast<int64_t>(std::thread::hardware_concurrency());
  EXPECT_LT(threads, bound) << "threads with " << kWatchers << " open streams";
  CancelAsA(id);
  ASSERT_TRUE(swarm.WaitDone(kPatience));
  const testing::WatchSwarm::Tally t = swarm.tally();
  EXPECT_EQ(t.codes.at(grpc::StatusCode::OK), kWatchers);
  EXPECT_EQ(t.last_state.at(v1::CANCELLED), kWatchers);  // everyone saw the terminal event
  EXPECT_TRUE(AwaitNoOpenStreams());
}

}  // namespace
}  // namespace caliber::coordinator
