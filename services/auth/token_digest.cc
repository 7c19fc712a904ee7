#include "services/auth/token_digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace caliber::auth {

TokenDigest Sha256Digest(std::string_view data) {
  TokenDigest out{};
  unsigned int len = 0;
  // EVP_Digest cannot fail for SHA-256 on in-memory data short of allocation failure, in which
  // case the zero digest matches nothing a caller can present (its preimage is unknown).
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

bool DigestsEqual(const TokenDigest& a, const TokenDigest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace caliber::auth
