// The S3 store against real servers started by the test:
//  - moto with signature checking (tests/tools/moto_s3.py): the IAM user's key works, a
//    wrong secret or no credentials get 403; what Caliber writes is read back with boto3
//    (tests/tools/s3_client.py) and what boto3 writes is read by Caliber.
//  - moto without authentication, for keys with characters and list prefixes that moto's
//    own signature check gets wrong (it rejects boto3's requests for them too).
//  - a scripted server (tests/tools/fake_s3.py) for 503s, 500s, stalls, trickles, pagination
//    and the exact headers sent.
//  - moto paused with SIGSTOP, as a hung store looks: connections are accepted by the kernel,
//    then nothing is answered until SIGCONT.
#include "services/storage/s3_store.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "services/child_process.h"
#include "services/storage/request_timeouts.h"
#include "services/storage/s3_http.h"
#include "services/storage/storage.h"

namespace caliber::storage {
namespace {

namespace fs = std::filesystem;
using ::caliber::testing::ChildProcess;
using ::caliber::testing::RunCommand;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kTools = std::string(CALIBER_TESTS_DIR) + "/tools";
constexpr char kBucket[] = "caliber-test";      // auth server
constexpr char kListBucket[] = "caliber-list";  // auth server, only List's objects
constexpr char kOpenBucket[] = "caliber-open";  // no-auth server

// Test processes inherit the machine's environment; the stores under test must not.
EnvLookup NoEnvironment() {
  return [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const fs::path& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

// A port nothing listens on (bound, then released).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class RecordingObserver : public StorageObserver {
 public:
  struct Request {
    std::string op;
    int64_t bytes;
    bool error;
  };
  void OnRequest(std::string_view backend, std::string_view op, int64_t bytes,
                 bool error) override {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(backend, "s3");
    requests.push_back({std::string(op), bytes, error});
  }
  int Count(const std::string& op, bool error) const {
    int n = 0;
    for (const Request& r : requests) n += (r.op == op && r.error == error) ? 1 : 0;
    return n;
  }
  std::mutex mu;
  std::vector<Request> requests;
};

// A helper process from tests/tools that prints one JSON line when ready, and the scratch
// directory of the suite that uses it.
struct Helper {
  std::unique_ptr<ChildProcess> process;
  nlohmann::json info;
  fs::path dir;
  std::string log;  // its stderr
  std::string error;
  bool missing_modules = false;  // python3 on PATH lacks moto or boto3
  std::string endpoint() const { return info.value("endpoint", ""); }
  std::string key_id() const { return info.value("access_key_id", ""); }
  std::string secret() const { return info.value("secret_access_key", ""); }
};

// Each suite starts the one server it talks to, in SetUpTestSuite. ctest runs every test in
// a process of its own, so a test waits only for its own server (moto needs ~2 s to start).
class S3ServerTest : public ::testing::Test {
 protected:
  static void Start(Helper& helper, const std::string& name, std::vector<std::string> args) {
    helper.dir = fs::path(::testing::TempDir()) /
                 ("s3_store_test_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(helper.dir);
    fs::create_directories(helper.dir);
    helper.log = (helper.dir / (name + ".log")).string();
    args.insert(args.begin(), "python3");
    helper.process = ChildProcess::Start(args, helper.log);
    std::optional<std::string> line;
    if (helper.process != nullptr) line = helper.process->ReadLine(std::chrono::seconds(60));
    if (line.has_value()) {
      helper.info = nlohmann::json::parse(*line, nullptr, /*allow_exceptions=*/false);
    }
    if (!line.has_value() || helper.info.is_discarded() || helper.endpoint().empty()) {
      const std::string log = ReadFile(helper.log);
      helper.missing_modules = log.find("No module named") != std::string::npos;
      helper.error = "helper " + args[1] + " did not start: " + log;
    }
  }

  static void Stop(Helper& helper) {
    helper.process.reset();  // closes its stdin, then signals if need be
    fs::remove_all(helper.dir);
  }

  // For SetUp: skip where the Python side is missing, fail where it broke.
  static void Require(const Helper& helper) {
    if (helper.missing_modules) GTEST_SKIP() << helper.error;
    ASSERT_TRUE(helper.error.empty()) << helper.error;
  }

  // Fast retries: these servers are local, and failures should fail quickly.
  static S3Options Options(const Helper& server) {
    S3Options options;
    options.endpoint = server.endpoint();
    options.access_key_id = server.key_id();
    options.secret_access_key = server.secret();
    options.max_attempts = 3;
    options.initial_backoff_ms = 10;
    options.max_backoff_ms = 50;
    options.retry_budget_ms = 2000;
    options.request_timeout_ms = 10000;
    return options;
  }

  static std::unique_ptr<S3Store> Store(const S3Options& options,
                                        StorageObserver* observer = nullptr,
                                        const EnvLookup& env = NoEnvironment()) {
    auto store = S3Store::Create(options, observer, env);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // tests/tools/s3_client.py (boto3) against `server`; its JSON result.
  static nlohmann::json Boto(const Helper& server, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {
        "python3",  kTools + "/s3_client.py", "--endpoint", server.endpoint(),
        "--key-id", server.key_id(),          "--secret",   server.secret()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string out;
    const std::string log = (server.dir / "boto.log").string();
    const int rc = RunCommand(argv, &out, log);
    EXPECT_EQ(rc, 0) << "s3_client.py failed: " << ReadFile(log);
    nlohmann::json result = nlohmann::json::parse(out, nullptr, false);
    EXPECT_FALSE(result.is_discarded()) << out;
    return result;
  }
};

// moto checking signatures, with an IAM user whose key the store uses (and one that may only
// read).
class S3StoreTest : public S3ServerTest {
 protected:
  static void SetUpTestSuite() {
    Start(auth_, "auth",
          {kTools + "/moto_s3.py", "--bucket", kBucket, "--bucket", kListBucket,
           "--read-only-user"});
  }
  static void TearDownTestSuite() { Stop(auth_); }
  void SetUp() override { Require(auth_); }
  static inline Helper auth_;
};

// moto accepting anything.
class S3StoreOpenTest : public S3ServerTest {
 protected:
  static void SetUpTestSuite() {
    Start(open_, "open", {kTools + "/moto_s3.py", "--no-auth", "--bucket", kOpenBucket});
  }
  static void TearDownTestSuite() { Stop(open_); }
  void SetUp() override { Require(open_); }
  static inline Helper open_;
};

// moto (checking signatures) that the tests stop and continue.
class S3StorePausedTest : public S3ServerTest {
 protected:
  static void SetUpTestSuite() {
    Start(paused_, "paused", {kTools + "/moto_s3.py", "--bucket", kBucket});
  }
  static void TearDownTestSuite() { Stop(paused_); }
  void SetUp() override { Require(paused_); }

  // The server is stopped while one of these lives (and always continued afterwards).
  class Pause {
   public:
    Pause() { ::kill(paused_.process->pid(), SIGSTOP); }
    ~Pause() { Resume(); }
    void Resume() {
      if (!resumed_) ::kill(paused_.process->pid(), SIGCONT);
      resumed_ = true;
    }

   private:
    bool resumed_ = false;
  };

  // Options as a deployment sets them: only the budget (and fast backoffs); the request
  // timeouts keep their defaults, which are longer than the budget.
  static S3Options BudgetOnly(int retry_budget_ms) {
    S3Options options = Options(paused_);
    const S3Options defaults;
    options.max_attempts = defaults.max_attempts;
    options.request_timeout_ms = defaults.request_timeout_ms;
    options.retry_budget_ms = retry_budget_ms;
    return options;
  }

  static inline Helper paused_;
};

// Failures staged by fake_s3.py.
class S3StoreFailureTest : public S3ServerTest {
 protected:
  static void SetUpTestSuite() { Start(fake_, "fake", {kTools + "/fake_s3.py"}); }
  static void TearDownTestSuite() { Stop(fake_); }
  void SetUp() override { Require(fake_); }
  static inline Helper fake_;
};

TEST_F(S3StoreTest, SmallObjectRoundTripCheckedWithBoto3) {
  RecordingObserver observer;
  auto store = Store(Options(auth_), &observer);
  const std::string data = "hello from caliber\n";
  const std::string key = std::string(kBucket) + "/small/hello world.txt";
  ASSERT_TRUE(store->Put(key, data).ok());
  EXPECT_EQ(*store->Get(key), data);
  EXPECT_EQ(*store->Size(key), static_cast<int64_t>(data.size()));

  nlohmann::json stat = Boto(auth_, {"stat", kBucket, "small/hello world.txt"});
  EXPECT_EQ(stat["size"], data.size());
  EXPECT_EQ(stat["sha256"], Sha256Hex(data));

  EXPECT_EQ(observer.Count("put", false), 1);
  EXPECT_EQ(observer.Count("get", false), 1);
  EXPECT_EQ(observer.Count("head", false), 1);
  EXPECT_EQ(observer.requests.front().bytes, static_cast<int64_t>(data.size()));
}

TEST_F(S3StoreTest, MultipartPutCheckedWithBoto3) {
  S3Options options = Options(auth_);
  options.multipart_threshold = 6 << 20;
  options.multipart_part_size = 5 << 20;
  RecordingObserver observer;
  auto store = Store(options, &observer);
  const std::string data = RandomBytes((13 << 20) + 17, 1);  // parts of 5, 5 and 3 MiB
  ASSERT_TRUE(store->Put(std::string(kBucket) + "/multi/memory.bin", data).ok());

  nlohmann::json stat = Boto(auth_, {"stat", kBucket, "multi/memory.bin"});
  EXPECT_EQ(stat["size"], data.size());
  EXPECT_EQ(stat["sha256"], Sha256Hex(data));
  // A multipart object's ETag is "<md5 of the part md5s>-<parts>".
  EXPECT_THAT(stat["etag"].get<std::string>(), HasSubstr("-3\""));
  // Create, three parts, complete.
  EXPECT_EQ(observer.Count("put", false), 5);
  EXPECT_EQ(observer.Count("put", true), 0);
}

TEST_F(S3StoreTest, PutFileStreamsSmallAndMultipartFilesCheckedWithBoto3) {
  S3Options options = Options(auth_);
  options.multipart_threshold = 6 << 20;
  options.multipart_part_size = 5 << 20;
  auto store = Store(options);
  const std::string big = RandomBytes(11 << 20, 2);
  const std::string small = RandomBytes(1 << 20, 3);
  WriteFile(auth_.dir / "big.bin", big);
  WriteFile(auth_.dir / "small.bin", small);
  ASSERT_TRUE(
      store->PutFile(std::string(kBucket) + "/files/big.bin", (auth_.dir / "big.bin").string())
          .ok());
  ASSERT_TRUE(
      store->PutFile(std::string(kBucket) + "/files/small.bin", (auth_.dir / "small.bin").string())
          .ok());

  nlohmann::json stat = Boto(auth_, {"stat", kBucket, "files/big.bin"});
  EXPECT_EQ(stat["sha256"], Sha256Hex(big));
  EXPECT_THAT(stat["etag"].get<std::string>(), HasSubstr("-3\""));
  EXPECT_EQ(*store->Get(std::string(kBucket) + "/files/small.bin"), small);

  absl::Status missing =
      store->PutFile(std::string(kBucket) + "/files/x", (auth_.dir / "missing.bin").string());
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
}

TEST_F(S3StoreTest, ReadsWhatBoto3Wrote) {
  const std::string data = RandomBytes((2 << 20) + 123, 4);
  WriteFile(auth_.dir / "boto.bin", data);
  Boto(auth_, {"put", kBucket, "from-boto/data.bin", (auth_.dir / "boto.bin").string()});
  auto store = Store(Options(auth_));
  const std::string key = std::string(kBucket) + "/from-boto/data.bin";
  const int64_t size = static_cast<int64_t>(data.size());

  EXPECT_EQ(*store->Size(key), size);
  EXPECT_EQ(*store->Get(key), data);
  EXPECT_EQ(*store->GetRange(key, 0, 10), data.substr(0, 10));
  EXPECT_EQ(*store->GetRange(key, 1000000, 70000), data.substr(1000000, 70000));
  EXPECT_EQ(*store->GetRange(key, size - 1, 1), data.substr(data.size() - 1));
  EXPECT_EQ(*store->GetRange(key, size, 0), "");

  absl::StatusOr<std::string> past = store->GetRange(key, size - 5, 10);  // 206, cut short
  EXPECT_EQ(past.status().code(), absl::StatusCode::kOutOfRange) << past.status();
  EXPECT_THAT(past.status().message(), HasSubstr(std::to_string(size) + " bytes"));
  EXPECT_EQ(store->GetRange(key, size, 1).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(store->GetRange(key, size + 1, 0).status().code(), absl::StatusCode::kOutOfRange);

  const fs::path out = auth_.dir / "download/nested/data.bin";
  ASSERT_TRUE(store->GetToFile(key, out.string()).ok());
  EXPECT_EQ(ReadFile(out), data);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(out.parent_path())) {
    names.push_back(e.path().filename().string());
  }
  EXPECT_THAT(names, ElementsAre("data.bin"));
}

TEST_F(S3StoreTest, MissingObjects) {
  auto store = Store(Options(auth_));
  const std::string key = std::string(kBucket) + "/missing/object";
  absl::StatusOr<std::string> get = store->Get(key);
  EXPECT_EQ(get.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(get.status().message(), HasSubstr("s3://caliber-test/missing/object"));
  EXPECT_THAT(get.status().message(), HasSubstr("HTTP 404 NoSuchKey"));
  EXPECT_EQ(store->Size(key).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetRange(key, 0, 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store->Delete(key).ok());
  const fs::path out = auth_.dir / "never/written.bin";
  EXPECT_EQ(store->GetToFile(key, out.string()).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(fs::is_empty(out.parent_path()));
  EXPECT_EQ(store->Get("no-such-bucket-here/x").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(S3StoreTest, DeleteRemovesTheObject) {
  auto store = Store(Options(auth_));
  const std::string key = std::string(kBucket) + "/doomed";
  ASSERT_TRUE(store->Put(key, "x").ok());
  ASSERT_TRUE(store->Delete(key).ok());
  EXPECT_EQ(store->Size(key).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Boto(auth_, {"exists", kBucket, "doomed"}), false);
}

TEST_F(S3StoreTest, WrongSecretIsPermissionDeniedWithoutRetries) {
  S3Options options = Options(auth_);
  options.secret_access_key = "not-the-secret";
  RecordingObserver observer;
  auto store = Store(options, &observer);
  const std::string key = std::string(kBucket) + "/denied.txt";

  absl::Status put = store->Put(key, "should not land");
  EXPECT_EQ(put.code(), absl::StatusCode::kPermissionDenied) << put;
  EXPECT_THAT(put.message(), HasSubstr("HTTP 403 SignatureDoesNotMatch"));
  EXPECT_THAT(put.message(), HasSubstr("s3://caliber-test/denied.txt"));
  EXPECT_EQ(store->Get(key).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(store->Size(key).status().code(), absl::StatusCode::kPermissionDenied);  // HEAD
  EXPECT_EQ(store->List(kBucket).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(observer.requests.size(), 4u);  // one try each: 403 is final

  options.access_key_id = "AKIAUNKNOWNKEY000000";
  absl::StatusOr<std::string> unknown = Store(options)->Get(key);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(unknown.status().message(), HasSubstr("InvalidAccessKeyId"));

  // Nothing was written.
  EXPECT_EQ(Store(Options(auth_))->Size(key).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(S3StoreTest, CredentialsFromTheSharedFile) {
  const fs::path file = auth_.dir / "credentials";
  WriteFile(file,
            "[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = nope\n"
            "[caliber]\naws_access_key_id = " +
                auth_.key_id() + "\naws_secret_access_key = " + auth_.secret() + "\n");
  S3Options options = Options(auth_);
  options.access_key_id.clear();
  options.secret_access_key.clear();
  options.credentials_file = file.string();
  auto store = Store(options, nullptr, [](const std::string& name) -> std::optional<std::string> {
    if (name == "AWS_PROFILE") return "caliber";
    return std::nullopt;
  });
  ASSERT_TRUE(store->Put(std::string(kBucket) + "/from-file", "profile works").ok());
  EXPECT_EQ(*store->Get(std::string(kBucket) + "/from-file"), "profile works");
}

TEST_F(S3StoreTest, ListWholeBucket) {
  // moto's signature check mishandles ListObjectsV2 prefixes; the authenticated List is
  // tested without one, on a bucket of its own.
  auto store = Store(Options(auth_));
  for (const char* key : {"b/2", "a", "b/1/x", "c d"}) {
    ASSERT_TRUE(store->Put(std::string(kListBucket) + "/" + key, key).ok());
  }
  const std::vector<std::string> expected = {"caliber-list/a", "caliber-list/b/1/x",
                                             "caliber-list/b/2", "caliber-list/c d"};
  EXPECT_EQ(*store->List(kListBucket), expected);
  EXPECT_EQ(*store->List(std::string(kListBucket) + "/"), expected);
}

TEST_F(S3StoreOpenTest, KeysWithSpecialCharactersAndListPrefixes) {
  auto store = Store(Options(open_));
  const std::vector<std::string> keys = {"dir/a+b&c=d;e,f.txt",
                                         "dir/sp ace/\xc3\xa9t\xc3\xa9.txt",
                                         "dir/<x>'\"!*()$@:.txt",
                                         "dir/dots/../kept",
                                         "dir/percent%41",
                                         "dir2/other",
                                         "dir/~tilde"};
  for (const std::string& key : keys) {
    ASSERT_TRUE(store->Put(std::string(kOpenBucket) + "/" + key, key).ok()) << key;
  }
  std::vector<std::string> in_dir;
  for (const std::string& key : keys) {
    if (key.rfind("dir/", 0) == 0) in_dir.push_back(key);
  }
  std::sort(in_dir.begin(), in_dir.end());
  // boto3 sees exactly these names: the keys were encoded right.
  EXPECT_EQ(Boto(open_, {"list", kOpenBucket, "dir/"}).get<std::vector<std::string>>(), in_dir);

  std::vector<std::string> expected;
  for (const std::string& key : in_dir) expected.push_back(std::string(kOpenBucket) + "/" + key);
  EXPECT_EQ(*store->List(std::string(kOpenBucket) + "/dir/"), expected);
  EXPECT_THAT(*store->List(std::string(kOpenBucket) + "/dir/sp ace/"),
              ElementsAre(std::string(kOpenBucket) + "/dir/sp ace/\xc3\xa9t\xc3\xa9.txt"));
  for (const std::string& key : keys) {
    EXPECT_EQ(*store->Get(std::string(kOpenBucket) + "/" + key), key);
  }
}

TEST_F(S3StoreTest, VirtualHostedStyle) {
  // curl resolves any *.localhost name to the loopback address itself, and moto reads the
  // bucket from the Host header.
  S3Options options = Options(auth_);
  options.path_style = false;
  options.endpoint = "http://localhost:" + auth_.endpoint().substr(auth_.endpoint().rfind(':') + 1);
  auto store = Store(options);
  const std::string key = std::string(kBucket) + "/virtual/host.txt";
  ASSERT_TRUE(store->Put(key, "virtual").ok());
  EXPECT_EQ(*store->Get(key), "virtual");
  EXPECT_EQ(*Store(Options(auth_))->Get(key), "virtual");  // the same object, path-style
}

TEST_F(S3StoreTest, ConcurrentRequestsFromManyThreads) {
  // One store, many threads: each request has its own curl handle; DNS and TLS state are
  // shared under locks.
  RecordingObserver observer;
  auto store = Store(Options(auth_), &observer);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 4; ++i) {
        const std::string key =
            std::string(kBucket) + "/threads/" + std::to_string(t) + "-" + std::to_string(i);
        const std::string data = RandomBytes(50000 + t * 1000 + i, t * 10 + i);
        if (!store->Put(key, data).ok() || store->Get(key).value_or("") != data) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(observer.Count("put", false), 32);
  EXPECT_EQ(observer.Count("get", false), 32);
}

TEST_F(S3StoreTest, StorageRoutesS3Uris) {
  StorageOptions options;
  options.s3 = Options(auth_);
  options.s3.region = "us-east-1";
  auto storage = Storage::Create(options);
  ASSERT_TRUE(storage.ok()) << storage.status();
  const std::string uri = "s3://caliber-test/routed/model.bin";
  ASSERT_TRUE((*storage)->Write(uri, "routed bytes").ok());
  EXPECT_EQ(*(*storage)->Read(uri), "routed bytes");
  EXPECT_EQ(*(*storage)->ReadRange(uri, 7, 5), "bytes");
  EXPECT_TRUE(*(*storage)->Exists(uri));
  EXPECT_FALSE(*(*storage)->Exists("s3://caliber-test/routed/missing"));
  absl::StatusOr<std::vector<std::string>> listed = (*storage)->List("s3://caliber-list");
  ASSERT_TRUE(listed.ok()) << listed.status();
  for (const std::string& item : *listed)
    EXPECT_THAT(item, ::testing::StartsWith("s3://caliber-list/"));
  ASSERT_TRUE((*storage)->Delete(uri).ok());
  EXPECT_FALSE(*(*storage)->Exists(uri));
}

TEST_F(S3StoreTest, CheckWritableFindsMissingBucketsAndReadOnlyCredentials) {
  auto store = Store(Options(auth_));
  const std::string out = std::string(kBucket) + "/jobs/out-1";
  absl::Status ok = store->CheckWritable(out);
  EXPECT_TRUE(ok.ok()) << ok;
  EXPECT_TRUE(store->CheckWritable(std::string(kBucket) + "/jobs/out-2/").ok());
  EXPECT_TRUE(store->CheckWritable(kBucket).ok());
  // The probe is removed again.
  EXPECT_EQ(Boto(auth_, {"exists", kBucket, "jobs/out-1/" + std::string(S3Store::kWriteProbeName)}),
            false);
  EXPECT_EQ(Boto(auth_, {"exists", kBucket, std::string(S3Store::kWriteProbeName)}), false);

  absl::Status missing = store->CheckWritable("no-such-output-bucket/jobs/out-1");
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_THAT(missing.message(), HasSubstr("S3 bucket \"no-such-output-bucket\" does not exist"));

  S3Options reader = Options(auth_);
  reader.access_key_id = auth_.info.value("read_only_access_key_id", "");
  reader.secret_access_key = auth_.info.value("read_only_secret_access_key", "");
  ASSERT_FALSE(reader.access_key_id.empty()) << auth_.info.dump();
  absl::Status denied = Store(reader)->CheckWritable(out);
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied) << denied;
  EXPECT_THAT(denied.message(), HasSubstr("may not write under s3://caliber-test/jobs/out-1"));

  EXPECT_EQ(store->CheckWritable("bad?bucket/x").code(), absl::StatusCode::kInvalidArgument);

  // Through the router, as the coordinator's Submit calls it.
  StorageOptions options;
  options.s3 = Options(auth_);
  auto storage = Storage::Create(options);
  ASSERT_TRUE(storage.ok()) << storage.status();
  EXPECT_TRUE((*storage)->CheckWritable("s3://caliber-test/jobs/out-3").ok());
  EXPECT_EQ((*storage)->CheckWritable("s3://no-such-output-bucket/out").code(),
            absl::StatusCode::kNotFound);
}

TEST_F(S3StorePausedTest, PausedStoreFailsWithinTheRetryBudget) {
  // The request timeouts are the defaults (longer than the budget): each try must still stop
  // at what is left of the budget, so the whole operation ends within the budget plus one
  // try's minimum wait.
  constexpr int kBudgetMs = 3000;
  auto store = Store(BudgetOnly(kBudgetMs));
  const std::string key = std::string(kBucket) + "/paused/existing.bin";
  const std::string data = RandomBytes(100000, 5);
  ASSERT_TRUE(store->Put(key, data).ok());

  Pause pause;
  auto timed = [](const auto& op) {
    const auto start = std::chrono::steady_clock::now();
    absl::Status status = op();
    return std::make_pair(status, std::chrono::steady_clock::now() - start);
  };
  // Bound: the budget, plus the minimum wait of a try started just before it ran out, plus
  // the allowance for the bytes, plus the progress check's granularity (about 1 s), plus 2 s
  // of slack for a loaded machine. (Before per-try deadlines: 120 s per operation.)
  const int64_t allowance_ms =
      static_cast<int64_t>(data.size()) * 1000 / S3Options().min_throughput_bytes_per_s;
  const auto bound = std::chrono::milliseconds(kBudgetMs + RequestTimeouts::kMinWaitMs +
                                               allowance_ms + 1000 + 2000);
  const auto [get, get_elapsed] = timed([&] { return store->Get(key).status(); });
  const auto [put, put_elapsed] =
      timed([&] { return store->Put(std::string(kBucket) + "/paused/new.bin", data); });
  pause.Resume();

  for (const auto& [status, elapsed] : {std::pair(get, get_elapsed), std::pair(put, put_elapsed)}) {
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_THAT(status.message(), HasSubstr("retry_budget_ms 3000")) << status;
    // A stall, or (when the body's first bytes crawled into the stopped server's socket
    // buffer) the total limit: both are this try's deadline, not a server answer.
    EXPECT_THAT(std::string(status.message()),
                ::testing::AnyOf(HasSubstr("no data moved"), HasSubstr("took longer than its limit")))
        << status;
    EXPECT_LT(elapsed, bound) << status;
    EXPECT_GE(elapsed, std::chrono::milliseconds(kBudgetMs / 2)) << status;  // it did wait
  }
  EXPECT_EQ(*store->Get(key), data);  // the store works again once continued
}

TEST_F(S3StorePausedTest, StoreContinuedWithinTheBudgetLetsTheOperationSucceed) {
  // Tries of 1 s are abandoned while the store is stopped; one after SIGCONT succeeds.
  constexpr int kBudgetMs = 20000;
  constexpr int kPauseMs = 2500;
  S3Options options = BudgetOnly(kBudgetMs);
  options.request_timeout_ms = 1000;
  RecordingObserver observer;
  auto store = Store(options, &observer);
  const std::string data = RandomBytes(300000, 6);
  const std::string key = std::string(kBucket) + "/paused/resumed.bin";

  auto while_paused = [&](const std::function<absl::Status()>& op) {
    Pause pause;
    const auto start = std::chrono::steady_clock::now();
    absl::Status status;
    std::thread thread([&] { status = op(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(kPauseMs));
    pause.Resume();
    thread.join();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(kBudgetMs));
    return status;
  };
  absl::Status put = while_paused([&] { return store->Put(key, data); });
  ASSERT_TRUE(put.ok()) << put;
  EXPECT_GE(observer.Count("put", true), 1);  // a try did time out while the store was stopped
  nlohmann::json stat = Boto(paused_, {"stat", kBucket, "paused/resumed.bin"});
  EXPECT_EQ(stat["size"], data.size());
  EXPECT_EQ(stat["sha256"], Sha256Hex(data));

  std::string got;
  absl::Status get = while_paused([&] {
    absl::StatusOr<std::string> bytes = store->Get(key);
    if (bytes.ok()) got = *std::move(bytes);
    return bytes.status();
  });
  ASSERT_TRUE(get.ok()) << get;
  EXPECT_EQ(got, data);
  EXPECT_GE(observer.Count("get", true), 1);
}

TEST_F(S3StoreFailureTest, RetriesServerErrorsThenSucceeds) {
  S3Options options = Options(fake_);
  options.max_attempts = 5;
  RecordingObserver observer;
  auto store = Store(options, &observer);
  EXPECT_EQ(*store->Get("flaky/2-get"), "payload:2-get");
  EXPECT_EQ(observer.Count("get", true), 2);
  EXPECT_EQ(observer.Count("get", false), 1);
  EXPECT_EQ(*store->Size("flaky/1-head"), static_cast<int64_t>(sizeof("payload:1-head") - 1));
}

TEST_F(S3StoreFailureTest, GivesUpAfterMaxAttemptsWithTheLastError) {
  RecordingObserver observer;
  auto store = Store(Options(fake_), &observer);  // 3 attempts
  absl::StatusOr<std::string> get = store->Get("broken/x");
  EXPECT_EQ(get.status().code(), absl::StatusCode::kUnavailable) << get.status();
  EXPECT_THAT(get.status().message(), HasSubstr("GET s3://broken/x"));
  EXPECT_THAT(get.status().message(), HasSubstr("3 attempt(s)"));
  EXPECT_THAT(get.status().message(), HasSubstr("HTTP 500 InternalError"));
  EXPECT_EQ(observer.Count("get", true), 3);

  absl::StatusOr<std::string> denied = store->Get("denied/x");  // 403: not retried
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.status().message(), HasSubstr("HTTP 403 AccessDenied: Access Denied"));
  EXPECT_EQ(observer.Count("get", true), 4);
}

TEST_F(S3StoreFailureTest, ConnectionFailuresStopAtTheRetryBudget) {
  S3Options options = Options(fake_);
  options.endpoint = "http://127.0.0.1:" + std::to_string(FreePort());
  options.max_attempts = 1000;
  options.initial_backoff_ms = 20;
  options.max_backoff_ms = 80;
  options.retry_budget_ms = 400;
  RecordingObserver observer;
  auto store = Store(options, &observer);
  const auto start = std::chrono::steady_clock::now();
  absl::Status put = store->Put("bucket/key", "data");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(put.code(), absl::StatusCode::kUnavailable) << put;
  EXPECT_THAT(put.message(), HasSubstr("curl error 7"));
  EXPECT_THAT(put.message(), HasSubstr("retry_budget_ms 400"));
  EXPECT_LT(elapsed, std::chrono::milliseconds(400 + 1000));
  EXPECT_GE(observer.Count("put", true), 3);
}

TEST_F(S3StoreFailureTest, StalledResponsesTimeOutAndAreRetried) {
  S3Options options = Options(fake_);
  options.request_timeout_ms = 300;
  options.max_attempts = 2;
  RecordingObserver observer;
  auto store = Store(options, &observer);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> get = store->Get("slow/x");
  EXPECT_EQ(get.status().code(), absl::StatusCode::kUnavailable) << get.status();
  EXPECT_THAT(get.status().message(), HasSubstr("no data moved for 300 ms"));
  EXPECT_EQ(observer.Count("get", true), 2);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(6));
}

TEST_F(S3StoreFailureTest, TricklingResponsesStopAtTheTotalLimit) {
  // A byte every 200 ms never trips the 500 ms stall limit; the total limit (500 ms plus 50
  // bytes at 1 MiB/s) ends each try, where the whole body would take 10 s.
  S3Options options = Options(fake_);
  options.request_timeout_ms = 500;
  options.max_attempts = 2;
  RecordingObserver observer;
  auto store = Store(options, &observer);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> get = store->Get("trickle/x");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(get.status().code(), absl::StatusCode::kUnavailable) << get.status();
  EXPECT_THAT(get.status().message(), HasSubstr("request took longer than its limit of 500 ms"));
  EXPECT_EQ(observer.Count("get", true), 2);
  // Two tries of 500 ms each, the progress check's second of granularity each, and slack for
  // a loaded machine; far below the 10 s one whole body takes.
  EXPECT_LT(elapsed, std::chrono::milliseconds(2 * (500 + 1000) + 3000));
}

TEST_F(S3StoreFailureTest, ListFollowsContinuationTokensAndDecodesKeys) {
  auto store = Store(Options(fake_));
  absl::StatusOr<std::vector<std::string>> keys = store->List("paged");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_THAT(*keys, ElementsAre("paged/a&b.txt", "paged/c<d>.txt", "paged/e\"f'.txt",
                                 "paged/\xc3\xa9t\xc3\xa9.txt"));
}

TEST_F(S3StoreFailureTest, SendsSignedPayloadHashAndSessionToken) {
  S3Options options = Options(fake_);
  options.session_token = "session-token-value";
  auto store = Store(options);
  absl::StatusOr<std::string> body = store->Get("echo/a key/x+y");
  ASSERT_TRUE(body.ok()) << body.status();
  nlohmann::json echo = nlohmann::json::parse(*body);
  EXPECT_EQ(echo["method"], "GET");
  EXPECT_EQ(echo["path"], "/echo/a%20key/x%2By");
  const nlohmann::json& headers = echo["headers"];
  EXPECT_EQ(headers["x-amz-content-sha256"], kEmptySha256);
  EXPECT_EQ(headers["x-amz-security-token"], "session-token-value");
  const std::string auth = headers["authorization"];
  EXPECT_THAT(auth, HasSubstr("AWS4-HMAC-SHA256 Credential=" + fake_.key_id() + "/"));
  EXPECT_THAT(auth, HasSubstr("/us-east-1/s3/aws4_request"));
  EXPECT_THAT(auth, HasSubstr("x-amz-content-sha256"));
  EXPECT_THAT(auth, HasSubstr("x-amz-security-token"));

  // A server that ignores Range sends the whole object; the range is cut out here.
  absl::StatusOr<std::string> range = store->GetRange("echo/x", 2, 6);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_EQ(*range, "method");
}

TEST_F(S3StoreFailureTest, WithoutCredentialsRequestsGoUnsignedAndDenialsSaySo) {
  // On fake_s3: moto answers an unsigned request with 500 when it checks signatures.
  S3Options options = Options(fake_);
  options.access_key_id.clear();
  options.secret_access_key.clear();
  auto store = Store(options, nullptr, [](const std::string& name) -> std::optional<std::string> {
    if (name == "HOME") return "/nonexistent-home";  // no ~/.aws/credentials either
    return std::nullopt;
  });
  absl::StatusOr<std::string> echo = store->Get("echo/x");
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_FALSE(nlohmann::json::parse(*echo)["headers"].contains("authorization")) << *echo;

  absl::StatusOr<std::string> get = store->Get("denied/x");
  EXPECT_EQ(get.status().code(), absl::StatusCode::kPermissionDenied) << get.status();
  EXPECT_THAT(get.status().message(), HasSubstr("the request was anonymous"));
}

}  // namespace
}  // namespace caliber::storage
