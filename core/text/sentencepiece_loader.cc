#include "core/text/sentencepiece_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"

namespace caliber {
namespace {

SentencePieceFunctions g_api;
absl::Status g_status = absl::UnknownError("not loaded");

template <typename F>
bool Bind(void* lib, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  return fn != nullptr;
}

void Load() {
  const char* env = std::getenv("CALIBER_SENTENCEPIECE_SHIM");
  const std::string path = env != nullptr && *env != '\0' ? env : CALIBER_SENTENCEPIECE_SHIM;
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (lib == nullptr) {
    g_status = absl::FailedPreconditionError(absl::StrCat("cannot load the SentencePiece shim ", path, ": ", dlerror()));
    return;
  }
  if (!Bind(lib, "caliber_spm_load", g_api.load) || !Bind(lib, "caliber_spm_free", g_api.free) ||
      !Bind(lib, "caliber_spm_encode", g_api.encode) || !Bind(lib, "caliber_spm_decode", g_api.decode) ||
      !Bind(lib, "caliber_spm_info", g_api.info)) {
    g_status = absl::FailedPreconditionError(absl::StrCat(path, " lacks the caliber_spm_* functions"));
    return;
  }
  g_status = absl::OkStatus();
}

}  // namespace

absl::StatusOr<const SentencePieceFunctions*> LoadSentencePiece() {
  static std::once_flag once;
  std::call_once(once, Load);
  if (!g_status.ok()) return g_status;
  return &g_api;
}

const SentencePieceFunctions* SentencePieceApi() { return &g_api; }

}  // namespace caliber
