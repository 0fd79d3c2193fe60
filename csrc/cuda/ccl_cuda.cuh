// GPU connected-component labelling with per-component stats, numbered as scipy (and ccl.hpp)
// number them: 8-connected, 1..n in raster order of each component's first pixel.
//
// Union-find on tiles (after Playne & Hawick's block union-find):
//   1. every ink pixel is its own set, keyed by its raster index;
//   2. each 16x16 tile unites its pixels in shared memory (atomicMin keeps the smallest index
//      as root, so a root is always the component's first pixel in raster order);
//   3. pixels on a tile's border unite with their ink neighbours in other tiles, in global memory;
//   4. paths are compressed; roots are flagged and an inclusive scan of the flags gives each root
//      its number; labels are written and boxes/areas accumulated with atomics.
// Everything runs on `stream` without a host synchronisation; the count stays on the device.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace abvoc_ccl_cuda {

constexpr int kTile = 16;
constexpr int kStatCols = 5;  // x0, y0, x1, y1 (exclusive), area

// Most components an h x w mask can hold under 8-connectivity (one per 2x2 cell).
inline int64_t max_components(int64_t h, int64_t w) { return ((h + 1) / 2) * ((w + 1) / 2); }

// Device scratch bytes label_with_stats needs for an h x w mask.
size_t workspace_bytes(int64_t h, int64_t w);

// mask: h*w bytes (nonzero = ink); labels: h*w int32; stats: max_components(h, w) rows of
// kStatCols int32, of which the first *count are written; count: one int32 on the device.
cudaError_t label_with_stats(const uint8_t* mask, int32_t h, int32_t w, int32_t* labels,
                             int32_t* stats, int32_t* count, void* workspace,
                             size_t workspace_size, cudaStream_t stream);

}  // namespace abvoc_ccl_cuda
