// The Storage router: which URIs are accepted, how they map to stores, and what the errors
// say. Uses file:// on a temporary root; s3:// URIs are only parsed here (s3_store_test talks
// to a real server).
#include "services/storage/storage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace caliber::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class StorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::path(::testing::TempDir()) / ("storage_test_" + std::to_string(::getpid()));
    fs::remove_all(base_);
    root_ = base_ / "root";
    fs::create_directories(root_);
    StorageOptions options;
    options.file_roots = {root_.string()};
    // Never reached by these tests; set so that nothing depends on the machine's AWS setup.
    options.s3.endpoint = "http://127.0.0.1:9";
    auto storage = Storage::Create(options);
    ASSERT_TRUE(storage.ok()) << storage.status();
    storage_ = *std::move(storage);
  }
  void TearDown() override { fs::remove_all(base_); }

  std::string Uri(const std::string& relative) const {
    return "file://" + (root_ / relative).string();
  }

  fs::path base_;
  fs::path root_;
  std::unique_ptr<Storage> storage_;
};

TEST_F(StorageTest, FileUrisRoundTrip) {
  ASSERT_TRUE(storage_->Write(Uri("m/config.json"), "{}").ok());
  EXPECT_EQ(*storage_->Read(Uri("m/config.json")), "{}");
  EXPECT_EQ(*storage_->ReadRange(Uri("m/config.json"), 1, 1), "}");
  EXPECT_EQ(*storage_->Size(Uri("m/config.json")), 2);
  EXPECT_TRUE(*storage_->Exists(Uri("m/config.json")));
  EXPECT_FALSE(*storage_->Exists(Uri("m/missing.json")));

  const fs::path local = base_ / "local.bin";
  std::ofstream(local, std::ios::binary) << "local bytes";
  ASSERT_TRUE(storage_->WriteFile(Uri("m/weights.bin"), local.string()).ok());
  ASSERT_TRUE(storage_->ReadToFile(Uri("m/weights.bin"), (base_ / "copy.bin").string()).ok());
  EXPECT_EQ(*storage_->Read(Uri("m/weights.bin")), "local bytes");

  EXPECT_THAT(*storage_->List(Uri("m/")), ElementsAre(Uri("m/config.json"), Uri("m/weights.bin")));
  EXPECT_THAT(*storage_->List(JoinUri("file://" + root_.string(), "m/w")),
              ElementsAre(Uri("m/weights.bin")));
  ASSERT_TRUE(storage_->Delete(Uri("m/config.json")).ok());
  EXPECT_FALSE(*storage_->Exists(Uri("m/config.json")));
  EXPECT_TRUE(storage_->Delete(Uri("m/config.json")).ok());
}

TEST_F(StorageTest, MalformedUrisAreInvalidArgumentsNamingTheUri) {
  for (const std::string uri :
       {"", "/abs/path", "bucket/key", "http://host/x", "gs://b/k", "S3://bucket/key", "s3://",
        "s3:///key", "file://relative/x", "file://", "s3://bad bucket/k"}) {
    absl::StatusOr<std::string> read = storage_->Read(uri);
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument)
        << uri << ": " << read.status();
    EXPECT_THAT(read.status().message(), HasSubstr("\"" + uri + "\"")) << uri;
    EXPECT_EQ(storage_->CheckUri(uri).code(), absl::StatusCode::kInvalidArgument) << uri;
    EXPECT_EQ(storage_->Exists(uri).status().code(), absl::StatusCode::kInvalidArgument) << uri;
  }
  EXPECT_THAT(storage_->Read("gs://b/k").status().message(), HasSubstr("unknown scheme"));
  EXPECT_THAT(storage_->Read("s3:///k").status().message(), HasSubstr("empty bucket"));
  EXPECT_THAT(storage_->Read("/x").status().message(), HasSubstr("no scheme"));
}

TEST_F(StorageTest, CheckUriConfinesFilesWithoutTouchingThem) {
  EXPECT_TRUE(storage_->CheckUri(Uri("new/dir/file")).ok());
  EXPECT_FALSE(fs::exists(root_ / "new"));
  EXPECT_EQ(storage_->CheckUri("file://" + base_.string() + "/outside").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(storage_->CheckUri(Uri("a/../../outside")).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(storage_->CheckUri("s3://bucket/some/key").ok());
  EXPECT_TRUE(storage_->CheckUri("s3://bucket").ok());
  EXPECT_EQ(storage_->Read("s3://bucket").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StorageTest, FileUrisNeedRoots) {
  auto storage = Storage::Create(StorageOptions{});
  ASSERT_TRUE(storage.ok()) << storage.status();
  absl::StatusOr<std::string> read = (*storage)->Read(Uri("x"));
  EXPECT_EQ(read.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(read.status().message(), HasSubstr(Uri("x")));
  EXPECT_EQ((*storage)->CheckUri("file:///etc/passwd").code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(StorageTest, CreateRejectsBadOptions) {
  StorageOptions relative_root;
  relative_root.file_roots = {"data"};
  EXPECT_EQ(Storage::Create(relative_root).status().code(), absl::StatusCode::kInvalidArgument);
  StorageOptions small_parts;
  small_parts.s3.multipart_part_size = 1 << 20;
  EXPECT_EQ(Storage::Create(small_parts).status().code(), absl::StatusCode::kInvalidArgument);
  StorageOptions bad_endpoint;
  bad_endpoint.s3.endpoint = "ftp://host";
  EXPECT_EQ(Storage::Create(bad_endpoint).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(JoinUriTest, ExactlyOneSlash) {
  EXPECT_EQ(JoinUri("s3://b/dir", "x"), "s3://b/dir/x");
  EXPECT_EQ(JoinUri("s3://b/dir/", "/x"), "s3://b/dir/x");
  EXPECT_EQ(JoinUri("file:///a//", "b/c"), "file:///a/b/c");
}

}  // namespace
}  // namespace caliber::storage
