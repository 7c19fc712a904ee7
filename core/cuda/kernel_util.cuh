// Device-side helpers shared by the op kernels (.cu files only): launch geometry for
// grid-stride loops and block-wide reductions.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace caliber::cuda::kernel {

inline constexpr int kThreads = 256;
// Enough blocks to cover `n` items with kThreads each, capped: grid-stride loops do the rest.
inline unsigned BlocksFor(int64_t n, int threads = kThreads) {
  constexpr int64_t kMaxBlocks = 65535LL * 16;
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

__device__ __forceinline__ int64_t GlobalThread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t GlobalStride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

struct SumOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
// Like std::max on the host: (a < b) ? b : a, so a NaN in `b` is ignored as core's loops do.
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return (a < b) ? b : a; }
};

template <typename Op>
__device__ __forceinline__ float WarpReduce(float v, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Reduces one value per thread over the block (blockDim.x a multiple of 32, at most 1024);
// every thread gets the result. `identity` fills the unused warp slots.
template <typename Op>
__device__ float BlockReduce(float v, Op op, float identity) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  v = WarpReduce(v, op);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = static_cast<int>(blockDim.x >> 5);
  v = (lane < warps) ? partial[lane] : identity;
  v = WarpReduce(v, op);
  __syncthreads();  // `partial` may be reused by a following reduction
  return v;
}

}  // namespace caliber::cuda::kernel
