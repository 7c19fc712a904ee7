// The file store on a real directory tree: round trips, ranges and their bounds, atomic
// writes that leave no temporaries, and confinement: `..`, paths outside the roots, and
// symlinks inside a root that lead out (to existing and to not-yet-existing places).
#include "services/storage/file_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "services/storage/object_store.h"

namespace caliber::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

// Every file and directory name under `dir`, relative, sorted.
std::vector<std::string> Tree(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    out.push_back(e.path().lexically_relative(dir).generic_string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class CountingObserver : public StorageObserver {
 public:
  void OnRequest(std::string_view backend, std::string_view op, int64_t bytes,
                 bool error) override {
    EXPECT_EQ(backend, "file");
    ops.push_back(std::string(op));
    total_bytes += bytes;
    errors += error ? 1 : 0;
  }
  std::vector<std::string> ops;
  int64_t total_bytes = 0;
  int errors = 0;
};

class FileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    base_ = fs::path(::testing::TempDir()) /
            ("file_store_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(base_);
    root_ = base_ / "root";
    elsewhere_ = base_ / "elsewhere";
    fs::create_directories(root_);
    fs::create_directories(elsewhere_);
    auto store = FileStore::Create({root_.string()}, &observer_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  void TearDown() override { fs::remove_all(base_); }

  std::string Key(const std::string& relative) const { return (root_ / relative).string(); }

  fs::path base_;
  fs::path root_;
  fs::path elsewhere_;
  CountingObserver observer_;
  std::unique_ptr<FileStore> store_;
};

TEST_F(FileStoreTest, PutThenGetSizeAndOverwrite) {
  ASSERT_TRUE(store_->Put(Key("a/b/c.bin"), "hello world").ok());  // parents are created
  EXPECT_EQ(ReadFile(root_ / "a/b/c.bin"), "hello world");
  EXPECT_EQ(*store_->Get(Key("a/b/c.bin")), "hello world");
  EXPECT_EQ(*store_->Size(Key("a/b/c.bin")), 11);

  ASSERT_TRUE(store_->Put(Key("a/b/c.bin"), "short").ok());
  EXPECT_EQ(*store_->Get(Key("a/b/c.bin")), "short");
  ASSERT_TRUE(store_->Put(Key("empty"), "").ok());
  EXPECT_EQ(*store_->Get(Key("empty")), "");
  EXPECT_EQ(*store_->Size(Key("empty")), 0);

  const std::string binary = RandomBytes(300000, 1);
  ASSERT_TRUE(store_->Put(Key("binary"), binary).ok());
  EXPECT_EQ(*store_->Get(Key("binary")), binary);

  EXPECT_EQ(observer_.errors, 0);
  EXPECT_EQ(observer_.ops.front(), "put");
}

TEST_F(FileStoreTest, RangedReadsAndTheirBounds) {
  ASSERT_TRUE(store_->Put(Key("r"), "0123456789").ok());
  EXPECT_EQ(*store_->GetRange(Key("r"), 0, 10), "0123456789");
  EXPECT_EQ(*store_->GetRange(Key("r"), 3, 4), "3456");
  EXPECT_EQ(*store_->GetRange(Key("r"), 9, 1), "9");
  EXPECT_EQ(*store_->GetRange(Key("r"), 10, 0), "");  // empty range at the very end

  absl::StatusOr<std::string> past = store_->GetRange(Key("r"), 8, 3);
  EXPECT_EQ(past.status().code(), absl::StatusCode::kOutOfRange) << past.status();
  EXPECT_THAT(past.status().message(), HasSubstr("10 bytes"));
  EXPECT_EQ(store_->GetRange(Key("r"), 11, 0).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(store_->GetRange(Key("r"), 5, INT64_MAX).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(store_->GetRange(Key("r"), -1, 2).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetRange(Key("r"), 0, -2).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FileStoreTest, MissingObjects) {
  EXPECT_EQ(store_->Get(Key("nope")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetRange(Key("nope"), 0, 1).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<int64_t> size = store_->Size(Key("dir/nope"));
  EXPECT_EQ(size.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(size.status().message(), HasSubstr(Key("dir/nope")));
  EXPECT_TRUE(store_->Delete(Key("nope")).ok());
  EXPECT_TRUE(store_->Delete(Key("no/such/dir/x")).ok());
  EXPECT_EQ(store_->GetToFile(Key("nope"), (base_ / "out").string()).code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(base_ / "out"));
}

TEST_F(FileStoreTest, DeleteRemovesTheFileButNotDirectories) {
  ASSERT_TRUE(store_->Put(Key("d/x"), "x").ok());
  ASSERT_TRUE(store_->Delete(Key("d/x")).ok());
  EXPECT_FALSE(fs::exists(root_ / "d/x"));
  EXPECT_EQ(store_->Delete(Key("d")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(fs::is_directory(root_ / "d"));
}

TEST_F(FileStoreTest, RemoveEmptyPrefixTakesOnlyEmptyDirectories) {
  // A job's scratch tree after its objects were deleted: empty directories, one of them
  // holding a file someone else still writes.
  ASSERT_TRUE(store_->Put(Key("out.work/layers/0/x"), "x").ok());
  ASSERT_TRUE(store_->Put(Key("out.work/acts/1/y"), "y").ok());
  ASSERT_TRUE(store_->Put(Key("out.work/keep/z"), "z").ok());
  ASSERT_TRUE(store_->Delete(Key("out.work/layers/0/x")).ok());
  ASSERT_TRUE(store_->Delete(Key("out.work/acts/1/y")).ok());
  ASSERT_TRUE(store_->RemoveEmptyPrefix(Key("out.work/")).ok());
  EXPECT_FALSE(fs::exists(root_ / "out.work/layers"));
  EXPECT_FALSE(fs::exists(root_ / "out.work/acts"));
  EXPECT_TRUE(fs::exists(root_ / "out.work/keep/z"));  // not empty: kept, and so is its parent
  ASSERT_TRUE(store_->Delete(Key("out.work/keep/z")).ok());
  ASSERT_TRUE(store_->RemoveEmptyPrefix(Key("out.work/")).ok());
  EXPECT_FALSE(fs::exists(root_ / "out.work"));
  EXPECT_TRUE(fs::is_directory(root_));
  // Gone already, a root, not a directory prefix, outside the roots.
  EXPECT_TRUE(store_->RemoveEmptyPrefix(Key("out.work/")).ok());
  EXPECT_EQ(store_->RemoveEmptyPrefix(root_.string() + "/").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(fs::is_directory(root_));
  EXPECT_EQ(store_->RemoveEmptyPrefix(Key("out.work")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->RemoveEmptyPrefix((elsewhere_ / "a/").string()).code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(FileStoreTest, PutIsAtomicAndLeavesNoTemporaries) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_->Put(Key("ckpt/model.safetensors"), RandomBytes(4096, i)).ok());
  }
  ASSERT_TRUE(store_->Put(Key("ckpt/config.json"), "{}").ok());
  EXPECT_THAT(Tree(root_), ElementsAre("ckpt", "ckpt/config.json", "ckpt/model.safetensors"));

  // A Put that cannot be renamed into place (a directory is in the way) fails and cleans up.
  fs::create_directories(root_ / "ckpt/blocked");
  absl::Status blocked = store_->Put(Key("ckpt/blocked"), "data");
  EXPECT_FALSE(blocked.ok());
  EXPECT_THAT(Tree(root_),
              ElementsAre("ckpt", "ckpt/blocked", "ckpt/config.json", "ckpt/model.safetensors"));

  // Readers never see a partial file: the old inode stays intact until the rename.
  ASSERT_TRUE(store_->Put(Key("swap"), std::string(1000, 'a')).ok());
  std::ifstream reader(root_ / "swap", std::ios::binary);
  ASSERT_TRUE(store_->Put(Key("swap"), std::string(10, 'b')).ok());
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(reader), {}), std::string(1000, 'a'));
  EXPECT_EQ(ReadFile(root_ / "swap"), std::string(10, 'b'));
}

TEST_F(FileStoreTest, NewFilesGetUmaskPermissions) {
  const mode_t old = ::umask(022);
  ASSERT_TRUE(store_->Put(Key("perm"), "x").ok());
  ::umask(old);
  EXPECT_EQ(fs::status(root_ / "perm").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
}

TEST_F(FileStoreTest, DotDotSegmentsAreRefusedBeforeTouchingDisk) {
  for (const std::string& key : {Key("a/../b"), Key("../elsewhere/x"), Key(".."),
                                 root_.string() + "/x/..", std::string("/..")}) {
    absl::Status put = store_->Put(key, "x");
    EXPECT_EQ(put.code(), absl::StatusCode::kPermissionDenied) << key << ": " << put;
    EXPECT_THAT(put.message(), HasSubstr("'..'"));
    EXPECT_EQ(store_->Get(key).status().code(), absl::StatusCode::kPermissionDenied) << key;
    EXPECT_EQ(store_->Delete(key).code(), absl::StatusCode::kPermissionDenied) << key;
  }
  EXPECT_FALSE(fs::exists(root_ / "a"));  // the parent was not created
  EXPECT_THAT(Tree(elsewhere_), IsEmpty());
  // Names that merely contain dots are fine.
  EXPECT_TRUE(store_->Put(Key("a..b/..c/.hidden"), "ok").ok());
}

TEST_F(FileStoreTest, PathsOutsideTheRootsAreRefused) {
  WriteFile(elsewhere_ / "secret", "secret");
  absl::StatusOr<std::string> get = store_->Get((elsewhere_ / "secret").string());
  EXPECT_EQ(get.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(get.status().message(), HasSubstr("outside the file roots"));
  // A sibling whose name starts with the root's name is not inside it.
  EXPECT_EQ(store_->Put(root_.string() + "-sibling/x", "x").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(fs::exists(root_.string() + "-sibling"));
  EXPECT_EQ(store_->Put("relative/path", "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Put("", "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Put(Key(std::string("nul\0byte", 8)), "x").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FileStoreTest, SymlinkLeadingOutOfTheRootIsRefused) {
  WriteFile(elsewhere_ / "secret", "secret");
  fs::create_directory_symlink(elsewhere_, root_ / "escape");
  fs::create_symlink(elsewhere_ / "secret", root_ / "secret-link");

  EXPECT_EQ(store_->Get(Key("escape/secret")).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->Get(Key("secret-link")).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->Put(Key("escape/planted"), "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->Put(Key("secret-link"), "overwritten").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->Delete(Key("escape/secret")).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ReadFile(elsewhere_ / "secret"), "secret");
  EXPECT_THAT(Tree(elsewhere_), ElementsAre("secret"));
}

TEST_F(FileStoreTest, DanglingSymlinkLeadingOutOfTheRootIsRefused) {
  // The target does not exist yet, so resolving stops at the link; it must still be followed.
  const fs::path not_yet = base_ / "not-yet";
  fs::create_directory_symlink(not_yet, root_ / "later");
  fs::create_symlink(base_ / "not-yet-file", root_ / "later-file");
  EXPECT_EQ(store_->Put(Key("later/x"), "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->Put(Key("later-file"), "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(fs::exists(not_yet));
  EXPECT_FALSE(fs::exists(base_ / "not-yet-file"));
}

TEST_F(FileStoreTest, SymlinksWithinTheRootsAreFollowed) {
  fs::create_directories(root_ / "real");
  fs::create_directory_symlink(root_ / "real", root_ / "alias");
  fs::create_directory_symlink("real", root_ / "relative-alias");
  ASSERT_TRUE(store_->Put(Key("alias/x"), "via alias").ok());
  EXPECT_EQ(ReadFile(root_ / "real/x"), "via alias");
  EXPECT_EQ(*store_->Get(Key("relative-alias/x")), "via alias");
}

TEST_F(FileStoreTest, RootsBehindSymlinksAndSeveralRoots) {
  fs::create_directory_symlink(root_, base_ / "root-link");
  auto store = FileStore::Create({(base_ / "root-link").string(), elsewhere_.string() + "/"});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Put((base_ / "root-link/x").string(), "x").ok());
  EXPECT_EQ(*(*store)->Get(Key("x")), "x");  // the same file by its resolved path
  EXPECT_TRUE((*store)->Put((elsewhere_ / "y").string(), "y").ok());
  EXPECT_EQ((*store)->Put((base_ / "z").string(), "z").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(*(*store)->List((base_ / "root-link/").string()),
              ElementsAre((base_ / "root-link/x").string()));
}

TEST_F(FileStoreTest, NoRootsRefusesEverything) {
  auto store = FileStore::Create({});
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->Put(Key("x"), "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ((*store)->Get(Key("x")).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ((*store)->List(Key("")).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT((*store)->Size("/x").status().message(), HasSubstr("no file roots"));
  EXPECT_EQ(FileStore::Create({"relative"}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FileStoreTest, ListIsRecursiveSortedAndMatchesByPrefix) {
  for (const char* name : {"zz", "a/x", "a2", "a/b/c", "b/only", "a/b/a"}) {
    ASSERT_TRUE(store_->Put(Key(name), name).ok());
  }
  fs::create_directories(root_ / "a/empty-dir");
  WriteFile(elsewhere_ / "outside", "o");
  fs::create_symlink(elsewhere_ / "outside", root_ / "a/link-out");
  fs::create_symlink(root_ / "zz", root_ / "a/link-in");

  EXPECT_THAT(*store_->List(Key("")), ElementsAre(Key("a/b/a"), Key("a/b/c"), Key("a/link-in"),
                                                  Key("a/x"), Key("a2"), Key("b/only"), Key("zz")));
  // A prefix is a string prefix, not a directory.
  EXPECT_THAT(*store_->List(Key("a")),
              ElementsAre(Key("a/b/a"), Key("a/b/c"), Key("a/link-in"), Key("a/x"), Key("a2")));
  EXPECT_THAT(*store_->List(Key("a/")),
              ElementsAre(Key("a/b/a"), Key("a/b/c"), Key("a/link-in"), Key("a/x")));
  EXPECT_THAT(*store_->List(Key("a/b/c")), ElementsAre(Key("a/b/c")));
  EXPECT_THAT(*store_->List(Key("nothing/here/")), IsEmpty());
  EXPECT_THAT(*store_->List(Key("q")), IsEmpty());
  EXPECT_EQ(store_->List(elsewhere_.string() + "/").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->List(Key("a/../")).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(FileStoreTest, PutFileAndGetToFileStream) {
  const std::string data = RandomBytes(3 << 20, 7);
  WriteFile(base_ / "local/in.bin", data);
  ASSERT_TRUE(store_->PutFile(Key("big/in.bin"), (base_ / "local/in.bin").string()).ok());
  EXPECT_EQ(ReadFile(root_ / "big/in.bin"), data);

  const fs::path out = base_ / "download/nested/out.bin";
  ASSERT_TRUE(store_->GetToFile(Key("big/in.bin"), out.string()).ok());
  EXPECT_EQ(ReadFile(out), data);
  EXPECT_THAT(Tree(out.parent_path()), ElementsAre("out.bin"));

  absl::Status missing = store_->PutFile(Key("x"), (base_ / "local/missing").string());
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_FALSE(fs::exists(root_ / "x"));
  EXPECT_GE(observer_.total_bytes, 2 * static_cast<int64_t>(data.size()));
  EXPECT_EQ(observer_.errors, 1);
}

TEST_F(FileStoreTest, ConfineReportsTheResolvedPath) {
  fs::create_directories(root_ / "real");
  fs::create_directory_symlink(root_ / "real", root_ / "alias");
  absl::StatusOr<fs::path> path = store_->Confine(Key("alias/new/file"));
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, fs::canonical(root_) / "real/new/file");
  EXPECT_FALSE(fs::exists(root_ / "real/new"));  // confining touches nothing
}

TEST_F(FileStoreTest, CheckWritableAcceptsNewDirectoriesAndRefusesFilesAndOutsidePaths) {
  EXPECT_TRUE(store_->CheckWritable(Key("out/job-1")).ok());  // created by the first Put
  EXPECT_FALSE(fs::exists(root_ / "out"));                    // checking creates nothing
  fs::create_directories(root_ / "existing");
  EXPECT_TRUE(store_->CheckWritable(Key("existing")).ok());

  WriteFile(root_ / "plain", "x");
  for (const std::string& key : {Key("plain"), Key("plain/below")}) {
    absl::Status file = store_->CheckWritable(key);
    EXPECT_EQ(file.code(), absl::StatusCode::kFailedPrecondition) << key << ": " << file;
    EXPECT_THAT(file.message(), HasSubstr("is not a directory"));
  }
  EXPECT_EQ(store_->CheckWritable((elsewhere_ / "out").string()).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(store_->CheckWritable(Key("a/../b")).code(), absl::StatusCode::kPermissionDenied);

  fs::create_directories(root_ / "locked");
  fs::permissions(root_ / "locked", fs::perms::owner_read | fs::perms::owner_exec);
  if (::geteuid() != 0) {  // root may write anywhere
    absl::Status locked = store_->CheckWritable(Key("locked/out"));
    EXPECT_EQ(locked.code(), absl::StatusCode::kPermissionDenied) << locked;
    EXPECT_THAT(locked.message(), HasSubstr("cannot create entries in"));
  }
  fs::permissions(root_ / "locked", fs::perms::owner_all);
}

}  // namespace
}  // namespace caliber::storage
