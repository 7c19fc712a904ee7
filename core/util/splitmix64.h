// SplitMix64 (Steele, Lea, Flood 2014): a tiny generator whose output is fixed by its
// definition, so seeded draws (calibration segments, validation hold-outs, Hadamard signs) are
// the same with every compiler and standard library (std:: distributions are not).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace caliber {

// Advances `state` and returns the next output.
inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Moves a uniform draw of n distinct elements of `items` to its front, in draw order (partial
// Fisher–Yates driven by SplitMix64 from `state`): the same draw on every platform.
template <typename T>
void PartialShuffle(std::vector<T>& items, size_t n, uint64_t& state) {
  const size_t size = items.size();
  for (size_t i = 0; i < n && i < size; ++i) {
    const size_t j = i + static_cast<size_t>(SplitMix64(state) % static_cast<uint64_t>(size - i));
    std::swap(items[i], items[j]);
  }
}

}  // namespace caliber
