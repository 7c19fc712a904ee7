// A C interface over SentencePiece, built as its own shared library and loaded with
// RTLD_DEEPBIND (core/text/sentencepiece_loader.cc). Debian's libsentencepiece carries a
// private copy of protobuf 3.14 under protobuf's own symbol names; in a process that also uses
// libprotobuf 3.21 (every gRPC binary) one of the two would otherwise run the other's code and
// abort. Loaded this way, SentencePiece binds to its own copy and the process to libprotobuf.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// sentencepiece_processor.h declares `namespace absl { using std::string_view; }`, which
// collides with Debian abseil's absl::string_view; renaming it for the include keeps both.
#define absl caliber_sentencepiece_absl
#include <sentencepiece_processor.h>
#undef absl

extern "C" {

__attribute__((visibility("default"))) void* caliber_spm_load(const char* path, char* err, size_t errlen) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  const auto status = sp->Load(path);
  if (!status.ok()) {
    std::snprintf(err, errlen, "%s", status.error_message());
    delete sp;
    return nullptr;
  }
  return sp;
}

__attribute__((visibility("default"))) void caliber_spm_free(void* sp) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(sp);
}

// ids: malloc'ed, freed with free(); returns the count.
__attribute__((visibility("default"))) size_t caliber_spm_encode(void* sp, const char* text, size_t len, int** ids) {
  std::vector<int> pieces;
  static_cast<sentencepiece::SentencePieceProcessor*>(sp)->Encode(std::string(text, len), &pieces).IgnoreError();
  *ids = static_cast<int*>(std::malloc(std::max<size_t>(1, pieces.size()) * sizeof(int)));
  if (!pieces.empty()) std::memcpy(*ids, pieces.data(), pieces.size() * sizeof(int));
  return pieces.size();
}

// Returns malloc'ed text (freed with free()); *len its length.
__attribute__((visibility("default"))) char* caliber_spm_decode(void* sp, const int* ids, size_t n, size_t* len) {
  std::string text;
  static_cast<sentencepiece::SentencePieceProcessor*>(sp)->Decode(std::vector<int>(ids, ids + n), &text).IgnoreError();
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  std::memcpy(out, text.data(), text.size());
  out[text.size()] = '\0';
  *len = text.size();
  return out;
}

// 0: bos, 1: eos, 2: unk, 3: vocabulary size.
__attribute__((visibility("default"))) int caliber_spm_info(void* sp, int what) {
  auto* p = static_cast<sentencepiece::SentencePieceProcessor*>(sp);
  switch (what) {
    case 0: return p->bos_id();
    case 1: return p->eos_id();
    case 2: return p->unk_id();
    default: return p->GetPieceSize();
  }
}

}  // extern "C"
