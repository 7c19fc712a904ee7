#include "services/auth/secret_file_mode.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace caliber::auth {
namespace {

class SecretFileMode : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/secret_file_mode_" + std::to_string(getpid());
    std::ofstream(path_) << "s3cret\n";
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::string path_;
};

TEST_F(SecretFileMode, OwnerOnlyPasses) {
  for (mode_t mode : {0600, 0400}) {
    ASSERT_EQ(chmod(path_.c_str(), mode), 0);
    EXPECT_TRUE(CheckSecretFileMode("test", "--token-file", path_, false).ok()) << mode;
  }
}

TEST_F(SecretFileMode, GroupOrWorldAccessRefusedUnlessAllowed) {
  for (mode_t mode : {0644, 0640, 0604, 0660, 0602, 0620}) {
    ASSERT_EQ(chmod(path_.c_str(), mode), 0);
    const absl::Status s = CheckSecretFileMode("test", "--token-file", path_, false);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << mode;
    EXPECT_NE(s.message().find("chmod 600 " + path_), absl::string_view::npos) << s;
    EXPECT_EQ(s.message().find("s3cret"), absl::string_view::npos);
    EXPECT_TRUE(CheckSecretFileMode("test", "--token-file", path_, true).ok()) << mode;
  }
}

TEST_F(SecretFileMode, MissingFileIsLeftToTheReader) {
  EXPECT_TRUE(CheckSecretFileMode("test", "--token-file", path_ + ".missing", false).ok());
}

}  // namespace
}  // namespace caliber::auth
