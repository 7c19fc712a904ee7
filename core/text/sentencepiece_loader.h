// Loads the SentencePiece shim (core/text/sentencepiece/shim.cc) with RTLD_DEEPBIND, once, and
// exposes its C functions. Why a shim: see shim.cc.
#pragma once

#include <cstddef>

#include "absl/status/statusor.h"

namespace caliber {

struct SentencePieceFunctions {
  void* (*load)(const char* path, char* err, size_t errlen);
  void (*free)(void* sp);
  size_t (*encode)(void* sp, const char* text, size_t len, int** ids);
  char* (*decode)(void* sp, const int* ids, size_t n, size_t* len);
  int (*info)(void* sp, int what);
};

// FailedPrecondition naming the path when the shim cannot be loaded. The shim is found at
// CALIBER_SENTENCEPIECE_SHIM (environment) or where the build put it.
absl::StatusOr<const SentencePieceFunctions*> LoadSentencePiece();
// The functions once LoadSentencePiece() succeeded (a Tokenizer exists only after it did).
const SentencePieceFunctions* SentencePieceApi();

}  // namespace caliber
