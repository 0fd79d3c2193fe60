// Connected-component labelling of a binary mask fused with per-component statistics.
//
// One header shared by every binding (CPython module, torch op, TensorRT plugin), so each
// runtime runs the same code. The numbering equals scipy.ndimage.label with a 3x3 (8-connected)
// structure: components are numbered 1..n in the raster order of their first pixel.
//
// Algorithm: two raster passes. The first gives each pixel a provisional label from its already
// seen neighbours (Wu, Otoo & Suzuki's decision tree: when the pixel above is ink it is copied and
// no union is needed) and records equivalences in a union-find whose root is always the smallest
// label of its set. Roots are therefore ordered by first pixel, so a single ascending flatten of
// the parent array yields scipy's numbering. The second pass writes the final labels and
// accumulates each component's box and area in the same sweep.
//
// Threading: one image is labelled by one thread (the formula images are small and a raster
// pass is memory-bound; splitting an image into strips would add a merge step for little gain).
// A batch is spread over threads, one image at a time per thread (label_batch).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace abvoc_ccl {

// Per-component statistics row: x0, y0, x1, y1 (exclusive, as in find_objects' slices), area.
constexpr int kStatCols = 5;

namespace detail {

inline int32_t find_root(std::vector<int32_t>& parent, int32_t x) {
  while (parent[x] != x) {
    parent[x] = parent[parent[x]];  // path halving
    x = parent[x];
  }
  return x;
}

inline void unite(std::vector<int32_t>& parent, int32_t a, int32_t b) {
  a = find_root(parent, a);
  b = find_root(parent, b);
  if (a < b) {
    parent[b] = a;
  } else if (b < a) {
    parent[a] = b;
  }
}

}  // namespace detail

// Labels one h x w mask (nonzero = ink) into `labels` (h*w int32, row-major) and replaces `stats`
// with n rows of kStatCols int64 values. Returns n, the number of components.
template <typename T>
int64_t label_with_stats(const T* mask, int64_t h, int64_t w, int32_t* labels,
                         std::vector<int64_t>& stats) {
  std::vector<int32_t> parent;
  parent.reserve(static_cast<size_t>(std::min<int64_t>(h * w / 4 + 2, 1 << 20)));
  parent.push_back(0);
  for (int64_t y = 0; y < h; ++y) {
    const T* row = mask + y * w;
    int32_t* out = labels + y * w;
    const int32_t* up = y > 0 ? out - w : nullptr;
    for (int64_t x = 0; x < w; ++x) {
      if (!row[x]) {
        out[x] = 0;
        continue;
      }
      const int32_t b = up ? up[x] : 0;
      if (b) {
        out[x] = b;
        continue;
      }
      const int32_t c = (up && x + 1 < w) ? up[x + 1] : 0;
      const int32_t a = (up && x > 0) ? up[x - 1] : 0;
      const int32_t d = x > 0 ? out[x - 1] : 0;
      if (c) {
        if (a) {
          detail::unite(parent, a, c);
        } else if (d) {
          detail::unite(parent, d, c);
        }
        out[x] = c;
      } else if (a) {
        out[x] = a;
      } else if (d) {
        out[x] = d;
      } else {
        const auto fresh = static_cast<int32_t>(parent.size());
        parent.push_back(fresh);
        out[x] = fresh;
      }
    }
  }
  // Flatten: a root is the smallest label of its set, so ascending order numbers the
  // components by first pixel; a non-root's parent is smaller and already numbered.
  int32_t n = 0;
  for (size_t k = 1; k < parent.size(); ++k) {
    parent[k] = parent[k] == static_cast<int32_t>(k) ? ++n : parent[parent[k]];
  }
  stats.assign(static_cast<size_t>(n) * kStatCols, 0);
  for (int32_t k = 0; k < n; ++k) {
    stats[k * kStatCols + 0] = w;
    stats[k * kStatCols + 1] = h;
  }
  for (int64_t y = 0; y < h; ++y) {
    int32_t* out = labels + y * w;
    for (int64_t x = 0; x < w; ++x) {
      if (!out[x]) continue;
      const int32_t lab = parent[out[x]];
      out[x] = lab;
      int64_t* s = &stats[static_cast<size_t>(lab - 1) * kStatCols];
      s[0] = std::min(s[0], x);
      s[1] = std::min(s[1], y);
      s[2] = std::max(s[2], x + 1);
      s[3] = std::max(s[3], y + 1);
      s[4] += 1;
    }
  }
  return n;
}

// Labels `batch` masks of h x w each; image i goes to labels + i*h*w and stats[i].
// Images are spread over up to `threads` workers (0 = hardware concurrency).
template <typename T>
void label_batch(const T* masks, int64_t batch, int64_t h, int64_t w, int32_t* labels,
                 std::vector<std::vector<int64_t>>& stats, int threads) {
  stats.assign(static_cast<size_t>(batch), {});
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<int64_t>(threads, batch));
  const int64_t plane = h * w;
  if (threads <= 1) {
    for (int64_t i = 0; i < batch; ++i) {
      label_with_stats(masks + i * plane, h, w, labels + i * plane, stats[i]);
    }
    return;
  }
  std::atomic<int64_t> next{0};
  auto work = [&]() {
    for (int64_t i = next++; i < batch; i = next++) {
      label_with_stats(masks + i * plane, h, w, labels + i * plane, stats[i]);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

}  // namespace abvoc_ccl
