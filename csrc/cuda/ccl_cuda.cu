// Kernels of ccl_cuda.cuh. Built only where nvcc exists (torch's extension tools or TensorRT's
// plugin build); see csrc/README.md.
#include <cub/device/device_scan.cuh>

#include "ccl_cuda.cuh"

namespace abvoc_ccl_cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int find_root(const int32_t* parent, int x) {
  while (parent[x] != x) x = parent[x];
  return x;
}

// Joins the sets of a and b; parents only ever decrease, so a lost race is retried on the
// parent that won it.
__device__ void unite(int32_t* parent, int a, int b) {
  while (true) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a == b) return;
    if (a > b) {
      const int t = a;
      a = b;
      b = t;
    }
    const int old = atomicMin(&parent[b], a);
    if (old == b) return;
    b = old;
  }
}

__global__ void merge_tiles(const uint8_t* mask, int32_t h, int32_t w, int32_t* parent) {
  __shared__ int32_t local[kTile * kTile];
  const int lx = threadIdx.x, ly = threadIdx.y;
  const int x = blockIdx.x * kTile + lx, y = blockIdx.y * kTile + ly;
  const int li = ly * kTile + lx;
  const bool ink = x < w && y < h && mask[static_cast<int64_t>(y) * w + x];
  local[li] = ink ? li : -1;
  __syncthreads();
  if (ink) {
    // Backward neighbours inside the tile: up-left, up, up-right, left.
    const int dx[4] = {-1, 0, 1, -1};
    const int dy[4] = {-1, -1, -1, 0};
    for (int k = 0; k < 4; ++k) {
      const int nx = lx + dx[k], ny = ly + dy[k];
      if (nx < 0 || ny < 0 || nx >= kTile || blockIdx.x * kTile + nx >= w) continue;
      const int ni = ny * kTile + nx;
      if (local[ni] >= 0) unite(local, li, ni);
    }
  }
  __syncthreads();
  if (ink) {
    const int root = find_root(local, li);
    const int gx = blockIdx.x * kTile + root % kTile, gy = blockIdx.y * kTile + root / kTile;
    parent[static_cast<int64_t>(y) * w + x] = gy * w + gx;
  } else if (x < w && y < h) {
    parent[static_cast<int64_t>(y) * w + x] = -1;
  }
}

__global__ void merge_borders(int32_t h, int32_t w, int32_t* parent) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= h * w || parent[i] < 0) return;
  const int x = i % w, y = i / w;
  const int tx = x / kTile, ty = y / kTile;
  const int dx[4] = {-1, 0, 1, -1};
  const int dy[4] = {-1, -1, -1, 0};
  for (int k = 0; k < 4; ++k) {
    const int nx = x + dx[k], ny = y + dy[k];
    if (nx < 0 || ny < 0 || nx >= w) continue;
    if (nx / kTile == tx && ny / kTile == ty) continue;  // united in merge_tiles
    const int ni = ny * w + nx;
    if (parent[ni] >= 0) unite(parent, i, ni);
  }
}

__global__ void compress(int32_t n, int32_t* parent, int32_t* is_root) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int p = parent[i];
  if (p >= 0) parent[i] = find_root(parent, i);
  is_root[i] = p == i ? 1 : 0;
}

__global__ void reset_stats(int32_t h, int32_t w, int32_t n_pixels, const int32_t* rank,
                            int32_t* stats, int32_t* count) {
  const int k = blockIdx.x * blockDim.x + threadIdx.x;
  const int n = rank[n_pixels - 1];
  if (k == 0) *count = n;
  if (k >= n) return;
  int32_t* s = stats + static_cast<int64_t>(k) * kStatCols;
  s[0] = w;
  s[1] = h;
  s[2] = 0;
  s[3] = 0;
  s[4] = 0;
}

__global__ void write_labels(int32_t w, int32_t n_pixels, const int32_t* parent,
                             const int32_t* rank, int32_t* labels, int32_t* stats) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n_pixels) return;
  const int root = parent[i];
  if (root < 0) {
    labels[i] = 0;
    return;
  }
  const int lab = rank[root];  // inclusive scan: the root's own number, 1-based
  labels[i] = lab;
  const int x = i % w, y = i / w;
  int32_t* s = stats + static_cast<int64_t>(lab - 1) * kStatCols;
  atomicMin(&s[0], x);
  atomicMin(&s[1], y);
  atomicMax(&s[2], x + 1);
  atomicMax(&s[3], y + 1);
  atomicAdd(&s[4], 1);
}

size_t scan_bytes(int64_t n) {
  size_t bytes = 0;
  cub::DeviceScan::InclusiveSum(nullptr, bytes, static_cast<int32_t*>(nullptr),
                                static_cast<int32_t*>(nullptr), static_cast<int>(n));
  return bytes;
}

size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace

size_t workspace_bytes(int64_t h, int64_t w) {
  const int64_t n = h * w;
  return 3 * aligned(n * sizeof(int32_t)) + aligned(scan_bytes(n));
}

cudaError_t label_with_stats(const uint8_t* mask, int32_t h, int32_t w, int32_t* labels,
                             int32_t* stats, int32_t* count, void* workspace,
                             size_t workspace_size, cudaStream_t stream) {
  const int32_t n = h * w;
  if (n == 0) return cudaMemsetAsync(count, 0, sizeof(int32_t), stream);
  if (workspace_size < workspace_bytes(h, w)) return cudaErrorInvalidValue;
  auto* base = static_cast<char*>(workspace);
  const size_t plane = aligned(static_cast<size_t>(n) * sizeof(int32_t));
  auto* parent = reinterpret_cast<int32_t*>(base);
  auto* is_root = reinterpret_cast<int32_t*>(base + plane);
  auto* rank = reinterpret_cast<int32_t*>(base + 2 * plane);
  void* scan_tmp = base + 3 * plane;
  size_t scan_size = workspace_size - 3 * plane;

  const dim3 tile(kTile, kTile);
  const dim3 tiles((w + kTile - 1) / kTile, (h + kTile - 1) / kTile);
  const int blocks = (n + kThreads - 1) / kThreads;
  merge_tiles<<<tiles, tile, 0, stream>>>(mask, h, w, parent);
  merge_borders<<<blocks, kThreads, 0, stream>>>(h, w, parent);
  compress<<<blocks, kThreads, 0, stream>>>(n, parent, is_root);
  cudaError_t err = cub::DeviceScan::InclusiveSum(scan_tmp, scan_size, is_root, rank, n, stream);
  if (err != cudaSuccess) return err;
  const int64_t most = max_components(h, w);
  reset_stats<<<static_cast<int>((most + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      h, w, n, rank, stats, count);
  write_labels<<<blocks, kThreads, 0, stream>>>(w, n, parent, rank, labels, stats);
  return cudaGetLastError();
}

}  // namespace abvoc_ccl_cuda
