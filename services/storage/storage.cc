// The router: a URI's scheme picks the store, the rest of the URI is that store's key
// ("file:///a/b" -> "/a/b"; "s3://bucket/k" -> "bucket/k"). URIs are taken literally: no
// percent-decoding, so a key is exactly the bytes after the scheme.
#include "services/storage/storage.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/storage/file_store.h"
#include "services/storage/s3_store.h"

namespace caliber::storage {
namespace {

constexpr std::string_view kFileScheme = "file://";
constexpr std::string_view kS3Scheme = "s3://";

std::string Quoted(std::string_view s) { return absl::StrCat("\"", std::string(s), "\""); }

}  // namespace

absl::StatusOr<std::unique_ptr<Storage>> Storage::Create(StorageOptions options) {
  std::unique_ptr<Storage> storage(new Storage(std::move(options)));
  absl::StatusOr<std::unique_ptr<FileStore>> file =
      FileStore::Create(storage->options_.file_roots, storage->options_.observer);
  if (!file.ok()) return file.status();
  storage->file_ = *std::move(file);
  absl::StatusOr<std::unique_ptr<S3Store>> s3 =
      S3Store::Create(storage->options_.s3, storage->options_.observer);
  if (!s3.ok()) return s3.status();
  storage->s3_ = *std::move(s3);
  return storage;
}

Storage::Storage(StorageOptions options) : options_(std::move(options)) {}
Storage::~Storage() = default;

absl::StatusOr<Storage::Resolved> Storage::Resolve(std::string_view uri) const {
  if (uri.substr(0, kFileScheme.size()) == kFileScheme) {
    std::string_view path = uri.substr(kFileScheme.size());
    if (path.empty() || path.front() != '/') {
      return absl::InvalidArgumentError(absl::StrCat(
          "storage URI ", Quoted(uri), ": a file URI needs an absolute path (file:///dir/name)"));
    }
    if (options_.file_roots.empty()) {
      return absl::PermissionDeniedError(
          absl::StrCat("storage URI ", Quoted(uri), ": no file roots are configured"));
    }
    return Resolved{file_.get(), std::string(path)};
  }
  if (uri.substr(0, kS3Scheme.size()) == kS3Scheme) {
    std::string_view rest = uri.substr(kS3Scheme.size());
    if (rest.empty() || rest.front() == '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("storage URI ", Quoted(uri), ": empty bucket (s3://bucket/key)"));
    }
    absl::Status key = static_cast<const S3Store*>(s3_.get())->CheckKey(rest);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("storage URI ", Quoted(uri), ": ", key.message()));
    }
    return Resolved{s3_.get(), std::string(rest)};
  }
  const size_t colon = uri.find("://");
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "storage URI ", Quoted(uri), " has no scheme (expected file:///path or s3://bucket/key)"));
  }
  return absl::InvalidArgumentError(absl::StrCat("storage URI ", Quoted(uri), ": unknown scheme ",
                                                 Quoted(uri.substr(0, colon)),
                                                 " (expected file or s3)"));
}

absl::Status Storage::CheckUri(std::string_view uri) const {
  absl::StatusOr<Resolved> resolved = Resolve(uri);
  if (!resolved.ok()) return resolved.status();
  if (resolved->store == file_.get()) {
    absl::StatusOr<std::filesystem::path> path =
        static_cast<const FileStore*>(file_.get())->Confine(resolved->key);
    if (!path.ok()) return path.status();
  }
  return absl::OkStatus();
}

absl::Status Storage::CheckWritable(std::string_view uri_prefix) {
  absl::StatusOr<Resolved> r = Resolve(uri_prefix);
  if (!r.ok()) return r.status();
  return r->store->CheckWritable(r->key);
}

absl::StatusOr<std::string> Storage::Read(std::string_view uri) {
  absl::StatusOr<Resolved> r = Resolve(uri);
  if (!r.ok()) return r.status();
  return r->store->Get(r->key);
}

absl::StatusOr<std::string> Storage::ReadRange(std::string_view uri, int64_t offset,
                                               int64_t length) {
  absl::StatusOr<Resolved> r = Resolve(uri);
  if (!r.ok()) return r.status();
  return r->store->GetRange(r->key, offset, length);
}

absl::StatusOr<int64_t> Storage::Size(std::string_view uri) {
  absl::StatusOr<Resolved> r = Resolve(uri);
  if (!r.ok()) return r.status();
  return r->store->Size(r->key);
}

absl::StatusOr<bool> Storage::Exists(std::string_view uri) {
  absl::StatusOr<int64_t> size = Size(uri);
  if (size.ok()) return true;
  if (absl::IsNotFound(size.status())) return false;
  return size.status();
}

absl::Status Storage::Write(std::string_view uri, std::string_view data) {
  absl::StatusOr<Resolved> r = Resolve(uri);
  if (!r.ok()) return r.status();
  return r->store->Put(r->key, data);
}

absl::Status Storage::WriteFile(std::string_view uri, const std::string& local_path) {
  absl::StatusOr<Resolved> r = Resolve(uri);
  if (!r.ok()) return r.status();
  return r->store->PutFile(r->key, local_path);
}

absl::Status Storage::ReadToFile(std::string_view uri, const std::string& local_path) {
  absl::StatusOr<Resolved> r = Resolve(uri);
  if (!r.ok()) return r.status();
  return r->store->GetToFile(r->key, local_path);
}

absl::Status Storage::Delete(std::string_view uri) {
  absl::StatusOr<Resolved> r = Resolve(uri);
  if (!r.ok()) return r.status();
  return r->store->Delete(r->key);
}

absl::StatusOr<std::vector<std::string>> Storage::List(std::string_view uri_prefix) {
  absl::StatusOr<Resolved> r = Resolve(uri_prefix);
  if (!r.ok()) return r.status();
  absl::StatusOr<std::vector<std::string>> keys = r->store->List(r->key);
  if (!keys.ok()) return keys.status();
  const std::string_view scheme = r->store == file_.get() ? kFileScheme : kS3Scheme;
  for (std::string& key : *keys) key = absl::StrCat(std::string(scheme), key);
  return keys;
}

absl::Status Storage::RemoveEmptyPrefix(std::string_view uri_prefix) {
  absl::StatusOr<Resolved> r = Resolve(uri_prefix);
  if (!r.ok()) return r.status();
  return r->store->RemoveEmptyPrefix(r->key);
}

}  // namespace caliber::storage
