// SplitMix64 (Steele, Lea, Flood 2014): a tiny generator whose output is fixed by its
// definition, so seeded draws (calibration segments, validation hold-outs, Hadamard signs) are
// the same with every compiler and standard library (std:: distributions are not).
#pragma once

#include <cstdint>

namespace caliber {

// Advances `state` and returns the next output.
inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace caliber
