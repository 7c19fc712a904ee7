// Secrets compared as SHA-256 digests in constant time: the API tokens (tenants.h) and the
// worker token (worker_token.h) share this, so neither the position of the first differing
// byte nor the length of the real secret shows in the time a refusal takes.
#pragma once

#include <array>
#include <string_view>

namespace caliber::auth {

using TokenDigest = std::array<unsigned char, 32>;

TokenDigest Sha256Digest(std::string_view data);
// Constant time in the digests' contents.
bool DigestsEqual(const TokenDigest& a, const TokenDigest& b);

}  // namespace caliber::auth
