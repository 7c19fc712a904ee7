#include "services/storage/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/storage/atomic_file.h"

namespace caliber::storage {
namespace {

namespace fs = std::filesystem;

constexpr size_t kCopyChunk = 1 << 20;
// Symlink hops followed while resolving one key (Linux's own limit).
constexpr int kMaxSymlinkHops = 40;

std::string Quoted(std::string_view s) { return absl::StrCat("\"", std::string(s), "\""); }

// Shape checks that need no file system: absolute, no NUL, no `..` segment.
absl::Status CheckKeyShape(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("empty file key");
  if (key.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("file key ", Quoted(key), " contains NUL"));
  }
  if (key.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("file key ", Quoted(key), " is not an absolute path"));
  }
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    if (key.substr(start, end - start) == "..") {
      return absl::PermissionDeniedError(
          absl::StrCat("file key ", Quoted(key), " contains a '..' segment"));
    }
    start = end + 1;
  }
  return absl::OkStatus();
}

// weakly_canonical resolves every symlink on the part of the path that exists, but stops at a
// dangling symlink (the link exists, its target does not), leaving it unresolved: a link to a
// directory outside the roots that does not exist yet would look confined. So each remaining
// symlink component is followed by hand, as the kernel would when creating the file.
absl::StatusOr<fs::path> ResolvePath(const fs::path& input) {
  fs::path path = input;
  for (int hop = 0; hop <= kMaxSymlinkHops; ++hop) {
    std::error_code ec;
    const fs::path resolved = fs::weakly_canonical(path, ec);
    if (ec) {
      return absl::ErrnoToStatus(ec.value(), absl::StrCat("resolve ", Quoted(input.string())));
    }
    fs::path prefix;
    fs::path dangling;
    auto it = resolved.begin();
    for (; it != resolved.end(); ++it) {
      prefix /= *it;
      const fs::file_status st = fs::symlink_status(prefix, ec);
      if (ec || !fs::exists(st)) break;
      if (fs::is_symlink(st)) {
        dangling = prefix;
        break;
      }
    }
    if (dangling.empty()) return resolved;
    fs::path target = fs::read_symlink(dangling, ec);
    if (ec) {
      return absl::ErrnoToStatus(ec.value(), absl::StrCat("read symlink ", dangling.string()));
    }
    if (target.is_relative()) target = dangling.parent_path() / target;
    for (++it; it != resolved.end(); ++it) target /= *it;
    path = target;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("too many levels of symbolic links resolving ", Quoted(input.string())));
}

// `path` equals `root` or lies below it, comparing whole components ("/data" does not contain
// "/database"). Both are resolved and absolute.
bool Within(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator on the root
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Opens a regular file for reading and returns its size through `size`.
absl::StatusOr<std::unique_ptr<Fd>> OpenRegular(const fs::path& path, std::string_view key,
                                                int64_t* size) {
  auto fd = std::make_unique<Fd>(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd->get() < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", Quoted(key)));
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("stat ", Quoted(key)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(Quoted(key), " is not a regular file"));
  }
  *size = st.st_size;
  return fd;
}

// Reads up to `length` bytes at `offset` (fewer only at end of file).
absl::Status ReadAt(int fd, int64_t offset, int64_t length, std::string_view key,
                    std::string* out) {
  try {
    out->resize(static_cast<size_t>(length));
  } catch (const std::exception&) {  // bad_alloc or length_error: nothing may escape
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot hold ", length, " bytes of ", Quoted(key), " in memory"));
  }
  int64_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(fd, out->data() + done, static_cast<size_t>(length - done),
                              static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("read ", Quoted(key)));
    }
    if (n == 0) break;
    done += n;
  }
  out->resize(static_cast<size_t>(done));
  return absl::OkStatus();
}

// Streams the whole of `fd` into `writer`.
absl::Status CopyInto(int fd, std::string_view what, AtomicFileWriter& writer) {
  std::string buffer(kCopyChunk, '\0');
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("read ", Quoted(what)));
    }
    if (n == 0) return absl::OkStatus();
    absl::Status status = writer.Append(std::string_view(buffer.data(), static_cast<size_t>(n)));
    if (!status.ok()) return status;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileStore>> FileStore::Create(const std::vector<std::string>& roots,
                                                             StorageObserver* observer) {
  std::vector<fs::path> resolved;
  for (const std::string& root : roots) {
    if (root.empty() || root.front() != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("file root ", Quoted(root), " is not an absolute path"));
    }
    absl::StatusOr<fs::path> path = ResolvePath(fs::path(root));
    if (!path.ok()) return path.status();
    fs::path normalized = path->lexically_normal();
    if (!normalized.has_filename() && normalized.has_relative_path()) {
      normalized = normalized.parent_path();  // drop a trailing separator
    }
    resolved.push_back(std::move(normalized));
  }
  return std::unique_ptr<FileStore>(new FileStore(std::move(resolved), observer));
}

absl::StatusOr<fs::path> FileStore::Confine(std::string_view key) const {
  absl::Status shape = CheckKeyShape(key);
  if (!shape.ok()) return shape;
  if (roots_.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat("file key ", Quoted(key), " refused: no file roots are configured"));
  }
  absl::StatusOr<fs::path> resolved = ResolvePath(fs::path(std::string(key)));
  if (!resolved.ok()) return resolved.status();
  for (const fs::path& root : roots_) {
    if (Within(*resolved, root)) return resolved;
  }
  std::vector<std::string> names;
  for (const fs::path& root : roots_) names.push_back(root.string());
  return absl::PermissionDeniedError(
      absl::StrCat("file key ", Quoted(key), " resolves to ", Quoted(resolved->string()),
                   ", outside the file roots (", absl::StrJoin(names, ", "), ")"));
}

void FileStore::Report(std::string_view op, int64_t bytes, const absl::Status& status) const {
  if (observer_ != nullptr) observer_->OnRequest("file", op, bytes, !status.ok());
}

absl::StatusOr<std::string> FileStore::Get(std::string_view key) {
  auto result = [&]() -> absl::StatusOr<std::string> {
    absl::StatusOr<fs::path> path = Confine(key);
    if (!path.ok()) return path.status();
    int64_t size = 0;
    absl::StatusOr<std::unique_ptr<Fd>> fd = OpenRegular(*path, key, &size);
    if (!fd.ok()) return fd.status();
    std::string data;
    absl::Status status = ReadAt((*fd)->get(), 0, size, key, &data);
    if (!status.ok()) return status;
    return data;
  }();
  Report("get", result.ok() ? static_cast<int64_t>(result->size()) : 0, result.status());
  return result;
}

absl::StatusOr<std::string> FileStore::GetRange(std::string_view key, int64_t offset,
                                                int64_t length) {
  auto result = [&]() -> absl::StatusOr<std::string> {
    if (offset < 0 || length < 0) {
      return absl::InvalidArgumentError(absl::StrCat("negative range (offset ", offset, ", length ",
                                                     length, ") for ", Quoted(key)));
    }
    absl::StatusOr<fs::path> path = Confine(key);
    if (!path.ok()) return path.status();
    int64_t size = 0;
    absl::StatusOr<std::unique_ptr<Fd>> fd = OpenRegular(*path, key, &size);
    if (!fd.ok()) return fd.status();
    if (offset > size || length > size - offset) {
      return absl::OutOfRangeError(absl::StrCat("range [", offset, ", ", offset + length,
                                                ") passes the end of ", Quoted(key), " (", size,
                                                " bytes)"));
    }
    std::string data;
    absl::Status status = ReadAt((*fd)->get(), offset, length, key, &data);
    if (!status.ok()) return status;
    if (static_cast<int64_t>(data.size()) != length) {
      return absl::OutOfRangeError(absl::StrCat(Quoted(key), " shrank while reading range [",
                                                offset, ", ", offset + length, ")"));
    }
    return data;
  }();
  Report("get", result.ok() ? static_cast<int64_t>(result->size()) : 0, result.status());
  return result;
}

absl::StatusOr<int64_t> FileStore::Size(std::string_view key) {
  auto result = [&]() -> absl::StatusOr<int64_t> {
    absl::StatusOr<fs::path> path = Confine(key);
    if (!path.ok()) return path.status();
    struct stat st;
    if (::stat(path->c_str(), &st) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("stat ", Quoted(key)));
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(Quoted(key), " is not a regular file"));
    }
    return static_cast<int64_t>(st.st_size);
  }();
  Report("head", 0, result.status());
  return result;
}

absl::Status FileStore::Put(std::string_view key, std::string_view data) {
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<fs::path> path = Confine(key);
    if (!path.ok()) return path.status();
    absl::StatusOr<std::unique_ptr<AtomicFileWriter>> writer =
        AtomicFileWriter::Create(path->string());
    if (!writer.ok()) return writer.status();
    absl::Status s = (*writer)->Append(data);
    if (!s.ok()) return s;
    return (*writer)->Commit();
  }();
  Report("put", status.ok() ? static_cast<int64_t>(data.size()) : 0, status);
  return status;
}

absl::Status FileStore::PutFile(std::string_view key, const std::string& local_path) {
  int64_t bytes = 0;
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<fs::path> path = Confine(key);
    if (!path.ok()) return path.status();
    int64_t size = 0;
    absl::StatusOr<std::unique_ptr<Fd>> source = OpenRegular(local_path, local_path, &size);
    if (!source.ok()) return source.status();
    absl::StatusOr<std::unique_ptr<AtomicFileWriter>> writer =
        AtomicFileWriter::Create(path->string());
    if (!writer.ok()) return writer.status();
    absl::Status s = CopyInto((*source)->get(), local_path, **writer);
    if (!s.ok()) return s;
    bytes = (*writer)->bytes_written();
    return (*writer)->Commit();
  }();
  Report("put", bytes, status);
  return status;
}

absl::Status FileStore::GetToFile(std::string_view key, const std::string& local_path) {
  int64_t bytes = 0;
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<fs::path> path = Confine(key);
    if (!path.ok()) return path.status();
    int64_t size = 0;
    absl::StatusOr<std::unique_ptr<Fd>> source = OpenRegular(*path, key, &size);
    if (!source.ok()) return source.status();
    absl::StatusOr<std::unique_ptr<AtomicFileWriter>> writer = AtomicFileWriter::Create(local_path);
    if (!writer.ok()) return writer.status();
    absl::Status s = CopyInto((*source)->get(), key, **writer);
    if (!s.ok()) return s;
    bytes = (*writer)->bytes_written();
    return (*writer)->Commit();
  }();
  Report("get", bytes, status);
  return status;
}

absl::Status FileStore::Delete(std::string_view key) {
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<fs::path> path = Confine(key);
    if (!path.ok()) return path.status();
    struct stat st;
    if (::lstat(path->c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return absl::OkStatus();
      return absl::ErrnoToStatus(errno, absl::StrCat("stat ", Quoted(key)));
    }
    if (S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(Quoted(key), " is a directory, not an object"));
    }
    if (::unlink(path->c_str()) != 0 && errno != ENOENT) {
      return absl::ErrnoToStatus(errno, absl::StrCat("delete ", Quoted(key)));
    }
    return absl::OkStatus();
  }();
  Report("delete", 0, status);
  return status;
}

absl::Status FileStore::RemoveEmptyPrefix(std::string_view prefix) {
  if (prefix.empty() || prefix.back() != '/') {
    return absl::InvalidArgumentError(absl::StrCat("not a directory prefix: ", Quoted(prefix)));
  }
  absl::StatusOr<fs::path> dir = Confine(prefix);
  if (!dir.ok()) return dir.status();
  auto spelled = [](const fs::path& p) {
    std::string s = p.lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
  };
  for (const fs::path& root : roots_) {
    if (spelled(*dir) == spelled(root)) {
      return absl::InvalidArgumentError(absl::StrCat(Quoted(prefix), " is a storage root"));
    }
  }
  std::error_code ec;
  if (!fs::is_directory(*dir, ec)) return absl::OkStatus();
  // Deepest first: a directory is visited after everything below it.
  std::vector<fs::path> dirs;
  for (fs::recursive_directory_iterator it(*dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entry_ec;
    if (it->is_directory(entry_ec) && !it->is_symlink(entry_ec)) dirs.push_back(it->path());
  }
  std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) { return a.string() > b.string(); });
  for (const fs::path& d : dirs) ::rmdir(d.c_str());  // fails, harmlessly, on a non-empty one
  ::rmdir(dir->c_str());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> FileStore::List(std::string_view prefix) {
  auto result = [&]() -> absl::StatusOr<std::vector<std::string>> {
    absl::Status shape = CheckKeyShape(prefix);
    if (!shape.ok()) return shape;
    // The directory part of the prefix, spelled as given: results are spelled the same way
    // so that they start with the prefix even when a root lies behind a symlink.
    const std::string dir_spelled(prefix.substr(0, prefix.rfind('/') + 1));
    absl::StatusOr<fs::path> dir = Confine(dir_spelled);
    if (!dir.ok()) return dir.status();
    std::vector<std::string> keys;
    std::error_code ec;
    if (!fs::is_directory(*dir, ec)) return keys;  // nothing there yet
    fs::recursive_directory_iterator it(*dir, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const fs::directory_entry& entry = *it;
      if (IsAtomicTempName(entry.path().filename().string())) continue;
      std::error_code entry_ec;
      if (!entry.is_regular_file(entry_ec)) continue;  // follows symlinks
      std::string key = dir_spelled + entry.path().lexically_relative(*dir).generic_string();
      if (!absl::StartsWith(key, std::string(prefix))) continue;
      // A symlink is listed only if it may be read: it must resolve inside a root.
      if (entry.is_symlink(entry_ec) && !Confine(key).ok()) continue;
      keys.push_back(std::move(key));
    }
    if (ec) return absl::ErrnoToStatus(ec.value(), absl::StrCat("list ", Quoted(prefix)));
    std::sort(keys.begin(), keys.end());
    return keys;
  }();
  Report("list", 0, result.status());
  return result;
}

absl::Status FileStore::CheckWritable(std::string_view prefix) {
  absl::StatusOr<fs::path> path = Confine(prefix);
  if (!path.ok()) return path.status();
  // Confine resolved every symlink, so the first existing ancestor is a real entry.
  fs::path existing = *path;
  std::error_code ec;
  while (!fs::exists(fs::symlink_status(existing, ec)) && existing.has_relative_path()) {
    existing = existing.parent_path();
  }
  if (!fs::is_directory(existing, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(Quoted(prefix), ": ", Quoted(existing.string()),
                     " exists and is not a directory, so nothing can be written under it"));
  }
  if (::access(existing.c_str(), W_OK | X_OK) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat(Quoted(prefix), ": cannot create entries in ",
                                                   Quoted(existing.string())));
  }
  return absl::OkStatus();
}

}  // namespace caliber::storage
