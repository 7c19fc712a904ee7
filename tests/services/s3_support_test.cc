// The pieces of the S3 store that need no server: SigV4 URI encoding, the XML it reads and
// writes, where credentials, region and endpoint come from, and the retry schedule.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <thread>

#include "services/storage/request_timeouts.h"
#include "services/storage/retry_policy.h"
#include "services/storage/s3_credentials.h"
#include "services/storage/s3_http.h"
#include "services/storage/s3_store.h"
#include "services/storage/s3_xml.h"

namespace caliber::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

EnvLookup MapEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(AwsUriEncodeTest, KeepsUnreservedAndOptionallySlashes) {
  EXPECT_EQ(AwsUriEncode("a/b c/d~e-f_g.h", true), "a/b%20c/d~e-f_g.h");
  EXPECT_EQ(AwsUriEncode("a/b", false), "a%2Fb");
  EXPECT_EQ(AwsUriEncode("+&=?#%'()*!$,;:@", true),
            "%2B%26%3D%3F%23%25%27%28%29%2A%21%24%2C%3B%3A%40");
  EXPECT_EQ(AwsUriEncode("\xc3\xa9t\xc3\xa9", true), "%C3%A9t%C3%A9");
  EXPECT_EQ(AwsUriEncode(std::string("\0x", 2), true), "%00x");
}

TEST(CanonicalQueryTest, SortsEncodesAndKeepsEmptyValues) {
  EXPECT_EQ(CanonicalQuery({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(
      CanonicalQuery({{"prefix", "a b/c"}, {"list-type", "2"}, {"continuation-token", "x+y="}}),
      "continuation-token=x%2By%3D&list-type=2&prefix=a%20b%2Fc");
  EXPECT_EQ(CanonicalQuery({{"uploadId", "u"}, {"partNumber", "10"}}), "partNumber=10&uploadId=u");
  EXPECT_EQ(CanonicalQuery({}), "");
}

TEST(Sha256HexTest, KnownDigests) {
  EXPECT_EQ(Sha256Hex(""), kEmptySha256);
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(S3XmlTest, UnescapesEntitiesAndCharacterReferences) {
  EXPECT_EQ(*XmlUnescape("a&amp;b&lt;c&gt;d&quot;e&apos;f"), "a&b<c>d\"e'f");
  EXPECT_EQ(*XmlUnescape("&#38;&#x26;&#xe9;&#128512;"), "&&\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(XmlUnescape("&bogus;").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(XmlUnescape("a & b").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(XmlUnescape("&#xD800;").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(XmlEscape("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
}

TEST(S3XmlTest, ParsesListObjectsV2Pages) {
  const std::string xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>p</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>p/a&amp;b</Key><Size>1</Size><Owner><ID>x</ID></Owner></Contents>
  <Contents><Key>p/&lt;c&gt;</Key><Size>2</Size></Contents>
  <Contents>
    <Key>p/&#233;</Key>
  </Contents>
  <CommonPrefixes><Prefix>p/dir/</Prefix></CommonPrefixes>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>)";
  absl::StatusOr<ListObjectsPage> page = ParseListObjectsV2(xml);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->keys, ElementsAre("p/a&b", "p/<c>", "p/\xc3\xa9"));
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ(page->next_continuation_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");

  absl::StatusOr<ListObjectsPage> empty = ParseListObjectsV2(
      "<ListBucketResult><IsTruncated>false</IsTruncated><Prefix/>"
      "</ListBucketResult>");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->keys.empty());
  EXPECT_FALSE(empty->truncated);

  EXPECT_FALSE(ParseListObjectsV2("<Error><Code>x</Code></Error>").ok());
  EXPECT_FALSE(ParseListObjectsV2("<ListBucketResult><IsTruncated>true</IsTruncated>"
                                  "</ListBucketResult>")
                   .ok());
  EXPECT_FALSE(ParseListObjectsV2("<ListBucketResult><Contents><Size>1</Size></Contents>"
                                  "</ListBucketResult>")
                   .ok());
}

TEST(S3XmlTest, ParsesErrorsAndUploadIds) {
  std::optional<S3ErrorBody> error = ParseS3Error(
      "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access &amp; "
      "Denied</Message><RequestId>r</RequestId></Error>");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "AccessDenied");
  EXPECT_EQ(error->message, "Access & Denied");
  EXPECT_FALSE(ParseS3Error("").has_value());
  EXPECT_FALSE(ParseS3Error("<html>bad gateway</html>").has_value());
  EXPECT_EQ(XmlFirstText("<InitiateMultipartUploadResult><Bucket>b</Bucket><UploadId>u-1"
                         "</UploadId></InitiateMultipartUploadResult>",
                         "UploadId"),
            "u-1");
  EXPECT_EQ(XmlFirstText("<A><KeyCount>1</KeyCount><Key>k</Key></A>", "Key"), "k");
}

TEST(S3XmlTest, CompleteMultipartUploadDocument) {
  EXPECT_EQ(CompleteMultipartUploadXml({{1, "\"e1\""}, {2, "\"e2\""}}),
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag></Part>"
            "<Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part>"
            "</CompleteMultipartUpload>");
}

TEST(S3CredentialsTest, ParsesSharedCredentialsProfiles) {
  const std::string ini = R"(# comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key=secret/default+

[profile other]
; comment
AWS_ACCESS_KEY_ID = AKIDOTHER
aws_secret_access_key = secret-other
aws_session_token = token-other
[broken]
aws_access_key_id = only-id
)";
  absl::StatusOr<S3Credentials> def = ParseSharedCredentials(ini, "default", "creds");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(def->access_key_id, "AKIDDEFAULT");
  EXPECT_EQ(def->secret_access_key, "secret/default+");
  EXPECT_EQ(def->session_token, "");
  absl::StatusOr<S3Credentials> other = ParseSharedCredentials(ini, "other", "creds");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->access_key_id, "AKIDOTHER");
  EXPECT_EQ(other->session_token, "token-other");
  EXPECT_EQ(ParseSharedCredentials(ini, "missing", "creds").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ParseSharedCredentials(ini, "broken", "creds").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseSharedCredentials("[x\n", "x", "creds").status().code(),
            absl::StatusCode::kInvalidArgument);
}

class CredentialsFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("s3_credentials_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / ".aws");
    file_ = (dir_ / ".aws/credentials").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& text) { std::ofstream(file_, std::ios::trunc) << text; }

  fs::path dir_;
  std::string file_;
};

TEST_F(CredentialsFileTest, PrecedenceOptionsThenEnvironmentThenFile) {
  Write(
      "[default]\naws_access_key_id=FILE\naws_secret_access_key=file-secret\n"
      "[ci]\naws_access_key_id=CI\naws_secret_access_key=ci-secret\n");
  const std::map<std::string, std::string> env = {{"HOME", dir_.string()},
                                                  {"AWS_ACCESS_KEY_ID", "ENV"},
                                                  {"AWS_SECRET_ACCESS_KEY", "env-secret"},
                                                  {"AWS_SESSION_TOKEN", "env-token"}};

  S3Options explicit_options;
  explicit_options.access_key_id = "OPT";
  explicit_options.secret_access_key = "opt-secret";
  absl::StatusOr<S3Credentials> c = S3CredentialsProvider(explicit_options, MapEnv(env)).Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "OPT");
  EXPECT_EQ(c->session_token, "");  // the environment's token does not go with other keys
  EXPECT_EQ(c->source, "options");

  c = S3CredentialsProvider(S3Options{}, MapEnv(env)).Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "ENV");
  EXPECT_EQ(c->session_token, "env-token");

  c = S3CredentialsProvider(S3Options{}, MapEnv({{"HOME", dir_.string()}})).Get();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "FILE");
  EXPECT_THAT(c->source, HasSubstr(file_));

  c = S3CredentialsProvider(S3Options{}, MapEnv({{"HOME", dir_.string()}, {"AWS_PROFILE", "ci"}}))
          .Get();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key_id, "CI");

  // An explicitly named profile or file must exist; the defaults may be absent (anonymous).
  c = S3CredentialsProvider(S3Options{}, MapEnv({{"HOME", dir_.string()}, {"AWS_PROFILE", "nope"}}))
          .Get();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  c = S3CredentialsProvider(S3Options{},
                            MapEnv({{"AWS_SHARED_CREDENTIALS_FILE", (dir_ / "missing").string()}}))
          .Get();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("missing"));
  c = S3CredentialsProvider(S3Options{}, MapEnv({{"HOME", (dir_ / "nowhere").string()}})).Get();
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->anonymous());

  // Half-set credentials are mistakes, not a reason to fall through to the next source.
  S3Options half;
  half.access_key_id = "OPT";
  EXPECT_EQ(S3CredentialsProvider(half, MapEnv(env)).Get().status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(S3CredentialsProvider(S3Options{}, MapEnv({{"AWS_ACCESS_KEY_ID", "x"}}))
                .Get()
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CredentialsFileTest, RotatedFileIsReread) {
  S3Options options;
  options.credentials_file = file_;
  Write("[default]\naws_access_key_id=OLD\naws_secret_access_key=old\n");
  S3CredentialsProvider provider(options, MapEnv({}));
  EXPECT_EQ(provider.Get()->access_key_id, "OLD");
  EXPECT_EQ(provider.Get()->access_key_id, "OLD");
  // A k8s Secret update swaps the file: new inode, new contents.
  const std::string next = file_ + ".next";
  std::ofstream(next) << "[default]\naws_access_key_id=NEW\naws_secret_access_key=new\n";
  fs::rename(next, file_);
  EXPECT_EQ(provider.Get()->access_key_id, "NEW");
}

TEST(S3StoreConfigTest, RegionAndEndpointFromOptionsOrEnvironment) {
  S3Options options;
  auto store = S3Store::Create(options, nullptr, MapEnv({}));
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->region(), "us-east-1");
  EXPECT_EQ((*store)->endpoint(), "https://s3.us-east-1.amazonaws.com");

  store = S3Store::Create(
      options, nullptr,
      MapEnv({{"AWS_DEFAULT_REGION", "eu-west-1"}, {"AWS_ENDPOINT_URL", "http://minio:9000/"}}));
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->region(), "eu-west-1");
  EXPECT_EQ((*store)->endpoint(), "http://minio:9000");

  store = S3Store::Create(options, nullptr,
                          MapEnv({{"AWS_REGION", "eu-central-1"},
                                  {"AWS_DEFAULT_REGION", "eu-west-1"},
                                  {"AWS_ENDPOINT_URL", "http://generic:1"},
                                  {"AWS_ENDPOINT_URL_S3", "http://s3-specific:2"}}));
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->region(), "eu-central-1");
  EXPECT_EQ((*store)->endpoint(), "http://s3-specific:2");

  options.region = "ap-south-1";
  options.endpoint = "https://storage.example.com/s3";
  store = S3Store::Create(
      options, nullptr,
      MapEnv({{"AWS_REGION", "eu-central-1"}, {"AWS_ENDPOINT_URL", "http://generic:1"}}));
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->region(), "ap-south-1");
  EXPECT_EQ((*store)->endpoint(), "https://storage.example.com/s3");
}

TEST(S3StoreConfigTest, RejectsOptionsThatCannotWork) {
  auto bad = [](auto mutate) {
    S3Options options;
    mutate(options);
    return S3Store::Create(options, nullptr, MapEnv({})).status().code();
  };
  EXPECT_EQ(bad([](S3Options& o) { o.max_attempts = 0; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](S3Options& o) { o.multipart_part_size = (5 << 20) - 1; }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](S3Options& o) { o.endpoint = "minio:9000"; }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](S3Options& o) { o.endpoint = "http://user@host"; }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](S3Options& o) { o.region = "us east"; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](S3Options& o) { o.request_timeout_ms = 0; }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](S3Options& o) { o.connect_timeout_ms = 0; }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](S3Options& o) { o.min_throughput_bytes_per_s = 0; }),
            absl::StatusCode::kInvalidArgument);
}

TEST(S3StoreConfigTest, KeysAreValidatedBeforeAnyRequest) {
  S3Options options;
  options.endpoint = "http://127.0.0.1:9";  // discard port: nothing answers
  options.max_attempts = 1;
  auto store = S3Store::Create(options, nullptr, MapEnv({}));
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->Get("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->Get("bucket").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->Get("bucket/").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->Get("bad?bucket/k").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->Put("b/" + std::string(1025, 'k'), "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->GetRange("bucket/k", -1, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->List("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*store)->CheckKey("bucket").ok());
}

TEST(RequestTimeoutsTest, TotalAllowsTheBytesAtTheMinimumRate) {
  RequestTimeouts t{/*connect_ms=*/2000, /*wait_ms=*/5000, /*min_bytes_per_second=*/1 << 20};
  EXPECT_EQ(t.TotalMs(0), 5000);
  EXPECT_EQ(t.TotalMs(1 << 20), 6000);
  EXPECT_EQ(t.TotalMs((16 << 20) + (1 << 19)), 5000 + 16500);
  EXPECT_EQ(t.TotalMs(-1), 5000);
  // 5 TiB (S3's largest object) at 1 byte/s: no overflow.
  t.min_bytes_per_second = 1;
  EXPECT_EQ(t.TotalMs(5ll << 40), 5000 + (5ll << 40) * 1000);
  EXPECT_EQ(t.TotalMs(std::numeric_limits<int64_t>::max()), std::numeric_limits<int64_t>::max());
}

TEST(RequestTimeoutsTest, WaitsShrinkToTheBudgetLeftButNotBelowTheMinimum) {
  const RequestTimeouts t{/*connect_ms=*/10000, /*wait_ms=*/30000, /*min_bytes_per_second=*/1000};
  using std::chrono::milliseconds;
  RequestTimeouts plenty = t.Within(milliseconds(60000));
  EXPECT_EQ(plenty.wait_ms, 30000);
  EXPECT_EQ(plenty.connect_ms, 10000);
  RequestTimeouts some = t.Within(milliseconds(8000));
  EXPECT_EQ(some.wait_ms, 8000);
  EXPECT_EQ(some.connect_ms, 8000);
  EXPECT_EQ(some.TotalMs(2000), 8000 + 2000);  // the bytes' allowance stays
  RequestTimeouts spent = t.Within(milliseconds(0));
  EXPECT_EQ(spent.wait_ms, RequestTimeouts::kMinWaitMs);
  EXPECT_EQ(spent.connect_ms, RequestTimeouts::kMinWaitMs);
  const RequestTimeouts quick{/*connect_ms=*/300, /*wait_ms=*/500, /*min_bytes_per_second=*/1};
  EXPECT_EQ(quick.Within(milliseconds(0)).wait_ms, 500);  // never longer than configured
  EXPECT_EQ(quick.Within(milliseconds(0)).connect_ms, 300);
}

TEST(RetryBudgetTest, LeftCountsDownToZero) {
  RetryBudget budget(RetryOptions{8, 10, 50, /*retry_budget_ms=*/200}, 1);
  EXPECT_GT(budget.left().count(), 0);
  EXPECT_LE(budget.left().count(), 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_EQ(budget.left().count(), 0);
  EXPECT_FALSE(budget.NextDelay().has_value());
}

TEST(RetryBudgetTest, ExponentialBackoffWithinJitterBounds) {
  RetryOptions options{/*max_attempts=*/6, /*initial_backoff_ms=*/100, /*max_backoff_ms=*/500,
                       /*retry_budget_ms=*/1000000};
  RetryBudget budget(options, 42);
  const int64_t caps[] = {100, 200, 400, 500, 500};
  for (int64_t cap : caps) {
    std::optional<std::chrono::milliseconds> delay = budget.NextDelay();
    ASSERT_TRUE(delay.has_value());
    EXPECT_GE(delay->count(), cap / 2);
    EXPECT_LE(delay->count(), cap);
  }
  EXPECT_EQ(budget.attempts(), 6);
  EXPECT_FALSE(budget.NextDelay().has_value());  // six tries in all
}

TEST(RetryBudgetTest, SameSeedSameDelays) {
  RetryOptions options{10, 1000, 60000, 1000000};
  RetryBudget a(options, 7);
  RetryBudget b(options, 7);
  RetryBudget c(options, 8);
  bool differs = false;
  for (int i = 0; i < 9; ++i) {
    const auto da = a.NextDelay();
    const auto db = b.NextDelay();
    const auto dc = c.NextDelay();
    EXPECT_EQ(da, db);
    differs = differs || da != dc;
  }
  EXPECT_TRUE(differs);
}

TEST(RetryBudgetTest, StopsWhenTheNextPauseWouldPassTheBudget) {
  RetryOptions options{100, 40, 40, 100};
  RetryBudget budget(options, 1);
  int retries = 0;
  while (std::optional<std::chrono::milliseconds> delay = budget.NextDelay()) {
    std::this_thread::sleep_for(*delay);
    ++retries;
  }
  EXPECT_GE(retries, 2);  // pauses of 20..40 ms fit at least twice into 100 ms
  EXPECT_LE(retries, 5);
  EXPECT_LT(budget.elapsed().count(), 200);  // 100 plus scheduling slack of a busy machine
  RetryBudget none(RetryOptions{1, 10, 10, 1000}, 1);
  EXPECT_FALSE(none.NextDelay().has_value());
}

}  // namespace
}  // namespace caliber::storage
