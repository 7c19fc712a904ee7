// TLS, mTLS and bearer tokens end to end: certificates made with the openssl CLI, a real gRPC
// server on 127.0.0.1 with a generic echo method that reports the authenticated tenant.
#include "services/auth/tls.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "services/auth/call_credentials.h"
#include "services/auth/tenants.h"

namespace caliber::auth {
namespace {

namespace fs = std::filesystem;

constexpr char kMethod[] = "/caliber.test.Echo/Echo";

// Replies with the caller's tenant ("-" when the server checks no tokens).
class EchoReactor final : public grpc::ServerGenericBidiReactor {
 public:
  EchoReactor(grpc::GenericCallbackServerContext* context, const TenantRegistry* registry) {
    if (registry != nullptr) {
      absl::StatusOr<const Tenant*> tenant = AuthenticateCall(*registry, *context);
      if (!tenant.ok()) {
        Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                            std::string(tenant.status().message())));
        return;
      }
      reply_text_ = (*tenant)->name;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request"));
      return;
    }
    grpc::Slice slice(reply_text_);
    reply_ = grpc::ByteBuffer(&slice, 1);
    StartWriteAndFinish(&reply_, grpc::WriteOptions(), grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  std::string reply_text_ = "-";
  grpc::ByteBuffer request_;
  grpc::ByteBuffer reply_;
};

class EchoService final : public grpc::CallbackGenericService {
 public:
  explicit EchoService(const TenantRegistry* registry) : registry_(registry) {}
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    return new EchoReactor(context, registry_);
  }

 private:
  const TenantRegistry* registry_;
};

struct TestServer {
  std::unique_ptr<EchoService> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::string target() const { return "127.0.0.1:" + std::to_string(port); }
  ~TestServer() {
    if (server) server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }
};

std::unique_ptr<TestServer> StartServer(const TlsOptions& options,
                                        const TenantRegistry* registry = nullptr) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = MakeServerCredentials(options);
  EXPECT_TRUE(creds.ok()) << creds.status();
  if (!creds.ok()) return nullptr;
  auto test = std::make_unique<TestServer>();
  test->service = std::make_unique<EchoService>(registry);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", *creds, &test->port);
  builder.RegisterCallbackGenericService(test->service.get());
  test->server = builder.BuildAndStart();
  EXPECT_NE(test->server, nullptr);
  EXPECT_GT(test->port, 0);
  if (test->server == nullptr) return nullptr;
  return test;
}

struct CallResult {
  grpc::Status status;
  std::string reply;
};

CallResult Call(const std::shared_ptr<grpc::Channel>& channel,
                const std::function<void(grpc::ClientContext&)>& setup = {}) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (setup) setup(context);
  grpc::Slice slice(std::string("ping"));
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, kMethod, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  CallResult result;
  result.status = done.get_future().get();
  if (result.status.ok()) {
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(response.Dump(&slices).ok());
    for (const grpc::Slice& s : slices) {
      result.reply.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return result;
}

CallResult CallWith(const std::string& target, const TlsOptions& options,
                    const std::function<void(grpc::ClientContext&)>& setup = {}) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(target, options);
  EXPECT_TRUE(channel.ok()) << channel.status();
  if (!channel.ok()) return {grpc::Status(grpc::StatusCode::INTERNAL, "no channel"), ""};
  return Call(*channel, setup);
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "/tls_test_" + std::to_string(getpid()));
    fs::create_directories(*dir_);
    const std::string d = *dir_;
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    {
      std::ofstream(d + "/server.ext")
          << "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
      std::ofstream(d + "/client.ext") << "extendedKeyUsage=clientAuth\n";
    }
    const std::vector<std::string> commands = {
        "openssl req -x509" + ec + "-keyout ca.key -out ca.pem -days 2 -subj /CN=caliber-test-ca",
        "openssl req" + ec + "-keyout server.key -out server.csr -subj /CN=localhost",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 "
        "-extfile server.ext -out server.pem",
        "openssl req" + ec + "-keyout client.key -out client.csr -subj /CN=worker-1",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -set_serial 3 -days 2 "
        "-extfile client.ext -out client.pem",
        "openssl req -x509" + ec + "-keyout rogue.key -out rogue.pem -days 2 -subj /CN=worker-1",
    };
    for (const std::string& command : commands) {
      const std::string full = "cd " + d + " && " + command + " >/dev/null 2>&1";
      ASSERT_EQ(std::system(full.c_str()), 0) << full;
    }
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }

  static std::string F(const std::string& name) { return *dir_ + "/" + name; }
  static TlsOptions ServerTls(bool mtls) {
    TlsOptions o;
    o.cert_file = F("server.pem");
    o.key_file = F("server.key");
    if (mtls) {
      o.ca_file = F("ca.pem");
      o.require_client_cert = true;
    }
    return o;
  }
  static TlsOptions ClientTls(const std::string& cert = "", const std::string& key = "") {
    TlsOptions o;
    o.ca_file = F("ca.pem");
    if (!cert.empty()) o.cert_file = F(cert);
    if (!key.empty()) o.key_file = F(key);
    return o;
  }

  static std::string* dir_;
};

std::string* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, InsecureWhenNothingIsConfigured) {
  TlsOptions none;
  EXPECT_FALSE(none.enabled());
  auto server = StartServer(none);
  ASSERT_NE(server, nullptr);
  CallResult r = CallWith(server->target(), none);
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.reply, "-");
}

TEST_F(TlsTest, TlsClientWithTheRightCaConnects) {
  auto server = StartServer(ServerTls(false));
  ASSERT_NE(server, nullptr);
  CallResult r = CallWith(server->target(), ClientTls());  // SAN IP:127.0.0.1
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  TlsOptions by_name = ClientTls();
  by_name.server_name_override = "localhost";  // SAN DNS:localhost
  r = CallWith(server->target(), by_name);
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
}

TEST_F(TlsTest, WrongServerNameFails) {
  auto server = StartServer(ServerTls(false));
  ASSERT_NE(server, nullptr);
  TlsOptions o = ClientTls();
  o.server_name_override = "coordinator.example.com";
  EXPECT_EQ(CallWith(server->target(), o).status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, PlaintextClientAndUntrustedCaFail) {
  auto server = StartServer(ServerTls(false));
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(CallWith(server->target(), TlsOptions{}).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
  TlsOptions wrong_ca;
  wrong_ca.ca_file = F("rogue.pem");
  EXPECT_EQ(CallWith(server->target(), wrong_ca).status.error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, MutualTls) {
  auto server = StartServer(ServerTls(true));
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(CallWith(server->target(), ClientTls()).status.error_code(),
            grpc::StatusCode::UNAVAILABLE)
      << "no client certificate";
  EXPECT_EQ(CallWith(server->target(), ClientTls("rogue.pem", "rogue.key")).status.error_code(),
            grpc::StatusCode::UNAVAILABLE)
      << "self-signed client certificate";
  EXPECT_EQ(CallWith(server->target(), TlsOptions{}).status.error_code(),
            grpc::StatusCode::UNAVAILABLE)
      << "plaintext";
  CallResult ok = CallWith(server->target(), ClientTls("client.pem", "client.key"));
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
}

TEST_F(TlsTest, BearerTokensOverTls) {
  auto registry =
      TenantRegistry::Parse(R"({"tenants": [{"name": "team-a", "tokens": ["token-a"]}]})");
  ASSERT_TRUE(registry.ok()) << registry.status();
  auto server = StartServer(ServerTls(false), registry->get());
  ASSERT_NE(server, nullptr);

  CallResult none = CallWith(server->target(), ClientTls());
  EXPECT_EQ(none.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  CallResult wrong = CallWith(server->target(), ClientTls(),
                              [](grpc::ClientContext& c) { AddBearerToken(c, "token-b"); });
  EXPECT_EQ(wrong.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(wrong.status.error_message().find("token-b"), std::string::npos);

  CallResult direct = CallWith(server->target(), ClientTls(),
                               [](grpc::ClientContext& c) { AddBearerToken(c, "token-a"); });
  EXPECT_TRUE(direct.status.ok()) << direct.status.error_message();
  EXPECT_EQ(direct.reply, "team-a");

  CallResult creds = CallWith(server->target(), ClientTls(), [](grpc::ClientContext& c) {
    c.set_credentials(BearerTokenCredentials("token-a"));
  });
  EXPECT_TRUE(creds.status.ok()) << creds.status.error_message();
  EXPECT_EQ(creds.reply, "team-a");

  // Attached to the channel rather than to each call.
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> tls =
      MakeChannelCredentials(ClientTls());
  ASSERT_TRUE(tls.ok()) << tls.status();
  auto channel = grpc::CreateChannel(
      server->target(), grpc::CompositeChannelCredentials(*tls, BearerTokenCredentials("token-a")));
  CallResult composite = Call(channel);
  EXPECT_TRUE(composite.status.ok()) << composite.status.error_message();
  EXPECT_EQ(composite.reply, "team-a");
}

TEST_F(TlsTest, BearerTokensOverPlaintext) {
  auto registry =
      TenantRegistry::Parse(R"({"tenants": [{"name": "team-a", "tokens": ["token-a"]}]})");
  ASSERT_TRUE(registry.ok()) << registry.status();
  auto server = StartServer(TlsOptions{}, registry->get());
  ASSERT_NE(server, nullptr);

  // The default call credentials refuse to send the token in the clear (client side: gRPC fails
  // the call with "insufficient security level" before anything is sent).
  CallResult refused = CallWith(server->target(), TlsOptions{}, [](grpc::ClientContext& c) {
    c.set_credentials(BearerTokenCredentials("token-a"));
  });
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << refused.status.error_message();
  EXPECT_NE(refused.status.error_message().find("security level"), std::string::npos)
      << refused.status.error_message();

  CallResult allowed = CallWith(server->target(), TlsOptions{}, [](grpc::ClientContext& c) {
    c.set_credentials(BearerTokenCredentials("token-a", /*allow_insecure_channel=*/true));
  });
  EXPECT_TRUE(allowed.status.ok()) << allowed.status.error_message();
  EXPECT_EQ(allowed.reply, "team-a");

  CallResult direct = CallWith(server->target(), TlsOptions{},
                               [](grpc::ClientContext& c) { AddBearerToken(c, "token-a"); });
  EXPECT_TRUE(direct.status.ok()) << direct.status.error_message();
  EXPECT_EQ(direct.reply, "team-a");
}

TEST_F(TlsTest, ConfigurationErrorsNameTheFile) {
  TlsOptions missing = ServerTls(false);
  missing.cert_file = F("absent.pem");
  auto r = MakeServerCredentials(missing);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(r.status().message()).find(F("absent.pem")), std::string::npos);

  TlsOptions only_ca;
  only_ca.ca_file = F("ca.pem");
  EXPECT_EQ(MakeServerCredentials(only_ca).status().code(), absl::StatusCode::kInvalidArgument);

  TlsOptions no_key = ServerTls(false);
  no_key.key_file.clear();
  EXPECT_EQ(MakeServerCredentials(no_key).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeChannelCredentials(ClientTls("client.pem", "")).status().code(),
            absl::StatusCode::kInvalidArgument);

  TlsOptions mtls_without_ca = ServerTls(false);
  mtls_without_ca.require_client_cert = true;
  auto no_ca = MakeServerCredentials(mtls_without_ca);
  EXPECT_EQ(no_ca.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(no_ca.status().message()).find("ca_file"), std::string::npos);

  TlsOptions mismatched = ServerTls(false);
  mismatched.key_file = F("client.key");
  auto mismatch = MakeServerCredentials(mismatched);
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(mismatch.status().message()).find(F("client.key")), std::string::npos);

  TlsOptions not_pem = ServerTls(false);
  not_pem.cert_file = F("server.ext");
  auto bad = MakeServerCredentials(not_pem);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad.status().message()).find(F("server.ext")), std::string::npos);

  TlsOptions bad_ca = ClientTls();
  bad_ca.ca_file = F("server.key");
  auto ca = MakeChannelCredentials(bad_ca);
  EXPECT_EQ(ca.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(ca.status().message()).find(F("server.key")), std::string::npos);
}

}  // namespace
}  // namespace caliber::auth
