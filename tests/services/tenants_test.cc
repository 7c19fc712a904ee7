#include "services/auth/tenants.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "services/auth/call_credentials.h"

namespace caliber::auth {
namespace {

std::string Sha256Hex(const std::string& text) {
  // The test computes the digest with the openssl CLI: independent of the code under test.
  // Per process: CTest runs this file's tests as parallel processes.
  const std::string path = ::testing::TempDir() + "/sha_input." + std::to_string(::getpid());
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  const std::string command = "openssl dgst -sha256 -r " + path;
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  char buffer[256] = {};
  const size_t n = fread(buffer, 1, sizeof(buffer) - 1, pipe);
  pclose(pipe);
  return std::string(buffer, n).substr(0, 64);
}

const char kGood[] = R"({"tenants": [
  {"name": "team-a", "tokens": ["token-a1", "token-a2"],
   "read_prefixes": ["s3://models/shared/"], "write_prefixes": ["s3://out/team-a/"]},
  {"name": "team-b", "tokens": ["token-b"],
   "read_prefixes": ["file:///data/b/"]}
]})";

std::string ParseError(const std::string& json) {
  absl::StatusOr<std::unique_ptr<TenantRegistry>> r = TenantRegistry::Parse(json);
  EXPECT_FALSE(r.ok()) << json;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  return std::string(r.status().message());
}

TEST(TenantRegistry, ParsesTenants) {
  auto registry = TenantRegistry::Parse(kGood);
  ASSERT_TRUE(registry.ok()) << registry.status();
  ASSERT_EQ((*registry)->tenants().size(), 2u);
  EXPECT_EQ((*registry)->tenants()[0].name, "team-a");
  EXPECT_EQ((*registry)->tenants()[1].read_prefixes, std::vector<std::string>{"file:///data/b/"});
  EXPECT_TRUE((*registry)->tenants()[1].write_prefixes.empty());
  EXPECT_FALSE((*registry)->allow_all());
}

TEST(TenantRegistry, MalformedFilesAreInvalidArgumentWithPreciseMessages) {
  EXPECT_NE(ParseError("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(ParseError("[]").find("must be a JSON object"), std::string::npos);
  EXPECT_NE(ParseError("{}").find("missing \"tenants\""), std::string::npos);
  EXPECT_NE(ParseError(R"({"tenants": {}})").find("\"tenants\" must be an array"),
            std::string::npos);
  EXPECT_NE(ParseError(R"({"tenants": [], "extra": 1})").find("unknown key \"extra\""),
            std::string::npos);
  EXPECT_NE(ParseError(R"({"tenants": [3]})").find("tenants[0]: must be an object"),
            std::string::npos);
  EXPECT_NE(ParseError(R"({"tenants": [{"tokens": ["x"]}]})").find("tenants[0]: missing \"name\""),
            std::string::npos);
  EXPECT_NE(ParseError(R"({"tenants": [{"name": "", "tokens": ["x"]}]})")
                .find("tenants[0].name: must be a non-empty string"),
            std::string::npos);
  EXPECT_NE(ParseError(R"({"tenants": [{"name": "a"}]})").find("missing \"tokens\""),
            std::string::npos);
  EXPECT_NE(ParseError(R"({"tenants": [{"name": "a", "tokens": [""]}]})")
                .find("tenants[0] (\"a\").tokens[0]: empty token"),
            std::string::npos);
  EXPECT_NE(ParseError(R"({"tenants": [{"name": "a", "tokens": [7]}]})")
                .find("tokens[0]: must be a string, got a number"),
            std::string::npos);
  EXPECT_NE(
      ParseError(R"({"tenants": [{"name": "a", "tokens": ["has space"]}]})").find("visible ASCII"),
      std::string::npos);
  EXPECT_NE(
      ParseError(R"({"tenants": [{"name": "a", "tokens": ["sha256:abc"]}]})").find("64 hex digits"),
      std::string::npos);
  EXPECT_NE(ParseError(R"({"tenants": [{"name": "a", "tokens": ["x"], "read_prefix": []}]})")
                .find("unknown key \"read_prefix\""),
            std::string::npos);
  EXPECT_NE(ParseError(R"({"tenants": [{"name": "a", "tokens": ["x"], "read_prefixes": [1]}]})")
                .find("read_prefixes[0]: must be a string, got a number"),
            std::string::npos);
  EXPECT_NE(
      ParseError(R"({"tenants": [{"name": "a", "tokens": ["x"], "write_prefixes": "s3://b/"}]})")
          .find("write_prefixes: must be an array"),
      std::string::npos);
  EXPECT_NE(
      ParseError(
          R"({"tenants": [{"name": "a", "tokens": ["x"], "read_prefixes": ["s3://b/team"]}]})")
          .find("must end in '/'"),
      std::string::npos);
  EXPECT_NE(
      ParseError(
          R"({"tenants": [{"name": "a", "tokens": ["x"], "read_prefixes": ["s3://b/x/../"]}]})")
          .find("not a plain scheme://authority/path URI"),
      std::string::npos);
  EXPECT_NE(
      ParseError(R"({"tenants": [{"name": "a", "tokens": ["x"]}, {"name": "a", "tokens": ["y"]}]})")
          .find("duplicate tenant name"),
      std::string::npos);
  EXPECT_NE(ParseError(R"({"tenants": [[[[[[[[[[[]]]]]]]]]]]})").find("nests deeper"),
            std::string::npos);
}

TEST(TenantRegistry, DuplicateTokenAcrossTenantsIsRejectedWithoutEchoingIt) {
  const std::string message = ParseError(
      R"({"tenants": [{"name": "a", "tokens": ["secret-1"]}, {"name": "b", "tokens": ["secret-1"]}]})");
  EXPECT_NE(message.find("tenants[1] (\"b\").tokens[0]"), std::string::npos) << message;
  EXPECT_NE(message.find("already given to tenant \"a\""), std::string::npos) << message;
  EXPECT_EQ(message.find("secret-1"), std::string::npos) << message;
  // The same token in plain and as its digest is a duplicate too.
  const std::string digest = "sha256:" + Sha256Hex("secret-2");
  const std::string mixed = ParseError(R"({"tenants": [{"name": "a", "tokens": ["secret-2"]},
      {"name": "b", "tokens": [")" + digest +
                                       R"("]}]})");
  EXPECT_NE(mixed.find("already given to tenant \"a\""), std::string::npos) << mixed;
}

TEST(TenantRegistry, Authenticate) {
  auto registry = TenantRegistry::Parse(kGood);
  ASSERT_TRUE(registry.ok()) << registry.status();
  const TenantRegistry& r = **registry;

  auto a = r.Authenticate("Bearer token-a2");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ((*a)->name, "team-a");
  auto b = r.Authenticate("bearer token-b");  // the scheme is case-insensitive
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->name, "team-b");

  for (const char* bad : {"", "token-a1", "Bearer", "Bearer ", "Bearer  token-a1",
                          "Basic dG9rZW4tYTE=", "Bearer token-a1 ", "Bearertoken-a1",
                          "Bearer token-a", "Bearer token-a1x", "Bearer TOKEN-A1"}) {
    auto result = r.Authenticate(bad);
    ASSERT_FALSE(result.ok()) << bad;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated) << bad;
    EXPECT_EQ(std::string(result.status().message()).find("token-a"), std::string::npos)
        << result.status();
  }
  EXPECT_NE(std::string(r.Authenticate("").status().message()).find("missing"), std::string::npos);
  EXPECT_NE(std::string(r.Authenticate("Bearer nope").status().message()).find("unknown"),
            std::string::npos);
  EXPECT_NE(std::string(r.Authenticate("Basic x").status().message()).find("not a Bearer"),
            std::string::npos);
}

TEST(TenantRegistry, Sha256Tokens) {
  const std::string hex = Sha256Hex("hashed-secret");
  ASSERT_EQ(hex.size(), 64u);
  const std::string json = R"({"tenants": [{"name": "h", "tokens": ["sha256:)" + hex + R"("]}]})";
  auto registry = TenantRegistry::Parse(json);
  ASSERT_TRUE(registry.ok()) << registry.status();
  auto t = (*registry)->Authenticate("Bearer hashed-secret");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->name, "h");
  // The digest itself is not a token.
  EXPECT_FALSE((*registry)->Authenticate("Bearer sha256:" + hex).ok());
  EXPECT_FALSE((*registry)->Authenticate("Bearer " + hex).ok());
  // Upper-case hex works too.
  std::string upper_hex = hex;
  for (char& c : upper_hex) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto registry2 = TenantRegistry::Parse(R"({"tenants": [{"name": "h", "tokens": ["sha256:)" +
                                         upper_hex + R"("]}]})");
  ASSERT_TRUE(registry2.ok()) << registry2.status();
  EXPECT_TRUE((*registry2)->Authenticate("Bearer hashed-secret").ok());
}

TEST(TenantRegistry, AllowAllLetsEveryoneInAsDefault) {
  auto registry = TenantRegistry::AllowAll();
  EXPECT_TRUE(registry->allow_all());
  for (const char* auth : {"", "Bearer whatever", "garbage"}) {
    auto t = registry->Authenticate(auth);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)->name, "default");
    EXPECT_TRUE((*t)->CanRead("s3://any/thing"));
    EXPECT_TRUE((*t)->CanWrite("file:///anywhere/x"));
    // Even "everything" excludes traversal.
    EXPECT_FALSE((*t)->CanWrite("file:///data/../etc/passwd"));
  }
}

TEST(Tenant, CanReadCanWrite) {
  Tenant t{"a", {"s3://models/shared/", "file:///data/ro/"}, {"s3://out/team-a/"}};
  EXPECT_TRUE(t.CanRead("s3://models/shared/llama/config.json"));
  EXPECT_TRUE(t.CanRead("file:///data/ro/model.safetensors"));
  EXPECT_TRUE(t.CanRead("s3://out/team-a/job1/model.safetensors"));  // writers read back
  EXPECT_FALSE(t.CanRead("s3://models/private/x"));
  EXPECT_FALSE(t.CanRead("s3://models/shared"));    // the prefix is a directory
  EXPECT_FALSE(t.CanRead("S3://models/shared/x"));  // nothing is normalized
  EXPECT_TRUE(t.CanWrite("s3://out/team-a/job1/"));
  EXPECT_FALSE(t.CanWrite("s3://models/shared/x"));
  EXPECT_FALSE(t.CanWrite("s3://out/team-ab/x"));
  EXPECT_FALSE(t.CanWrite("s3://out/team-b/x"));
}

TEST(Tenant, TraversalIsNeverAllowed) {
  Tenant t{"a", {"file:///data/a/"}, {"s3://out/team-a/"}};
  const std::vector<std::string> uris = {
      "file:///data/a/../b/secret",
      "file:///data/a/..",
      "file:///data/a/x/../../b",
      "file:///data/a/./x",
      "file:///data/a//etc/passwd",
      "file:///data/a/%2e%2e/b",
      "file:///data/a/%2E%2E/b",
      "file:///data/a/.%2e/b",
      "file:///data/a/%252e%252e/b",
      "file:///data/a/x%2fy",
      "file:///data/a/x%5cy",
      "file:///data/a/..\\b",
      "file:///data/a/x%zz",
      "file:///data/a/x%2",
      "s3://out/team-a/../team-b/x",
      "s3://out/team-a/x/..",
      std::string("file:///data/a/x\0y", 18),
      "file:///data/a/x\ny",
  };
  for (const std::string& uri : uris) {
    EXPECT_FALSE(t.CanRead(uri)) << uri;
    EXPECT_FALSE(t.CanWrite(uri)) << uri;
  }
  // Dots inside names are fine.
  EXPECT_TRUE(t.CanRead("file:///data/a/model..v2/x.safetensors"));
  EXPECT_TRUE(t.CanRead("file:///data/a/.hidden"));
  EXPECT_TRUE(t.CanWrite("s3://out/team-a/a%20b"));
}

TEST(IsSafeUri, Shapes) {
  EXPECT_TRUE(IsSafeUri("s3://bucket"));
  EXPECT_TRUE(IsSafeUri("s3://bucket/"));
  EXPECT_TRUE(IsSafeUri("s3://bucket/a/b/"));
  EXPECT_TRUE(IsSafeUri("file:///abs/path"));
  EXPECT_FALSE(IsSafeUri("/abs/path"));
  EXPECT_FALSE(IsSafeUri("://x/y"));
  EXPECT_FALSE(IsSafeUri("1s3://x/y"));
  EXPECT_FALSE(IsSafeUri("file://../etc"));
  EXPECT_FALSE(IsSafeUri("s3://bucket//key"));
}

TEST(TenantRegistry, LoadFile) {
  const std::string dir = ::testing::TempDir() + "/tenants_test_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/tokens.json";
  {
    std::ofstream out(path);
    out << kGood;
  }
  auto registry = TenantRegistry::LoadFile(path);
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_EQ((*registry)->tenants().size(), 2u);

  auto missing = TenantRegistry::LoadFile(dir + "/nope.json");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.status().message()).find(dir + "/nope.json"), std::string::npos);

  {
    std::ofstream out(path);
    out << R"({"tenants": [{"name": "a"}]})";
  }
  auto bad = TenantRegistry::LoadFile(path);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad.status().message()).find(path), std::string::npos) << bad.status();
  EXPECT_NE(std::string(bad.status().message()).find("missing \"tokens\""), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(ReadTokenFile, TrimsAndValidates) {
  const std::string dir = ::testing::TempDir() + "/token_file_test_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/token";
  auto write = [&](const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
  };
  write("  my-token\n");
  auto token = ReadTokenFile(path);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "my-token");
  write("\n\t \n");
  EXPECT_EQ(ReadTokenFile(path).status().code(), absl::StatusCode::kInvalidArgument);
  write("two words");
  auto inner = ReadTokenFile(path);
  EXPECT_EQ(inner.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(inner.status().message()).find("words"), std::string::npos);
  auto missing = ReadTokenFile(dir + "/absent");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.status().message()).find(dir + "/absent"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace caliber::auth
