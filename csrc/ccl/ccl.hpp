// Connected-component labelling of a binary mask fused with per-component statistics.
//
// One header shared by every binding (CPython module, torch op, ONNX Runtime library, TensorRT
// plugin), so each runtime runs the same code. The numbering equals scipy.ndimage.label with a 3x3 (8-connected)
// structure: components are numbered 1..n in the raster order of their first pixel.
//
// Algorithm: two raster passes. The first labels each row run by run from the row above (a run
// shares one label, so a pixel inside a run costs one rarely-taken test), counts each run in its
// provisional set's box and area, and records equivalences in a union-find whose root is always
// the smallest label of its set. Roots are therefore ordered by first pixel, so one ascending
// flatten of the parent array yields scipy's numbering and folds the sets' statistics together;
// the second pass fills each recorded run with its final label.
//
// Threading: one image is labelled by one thread (the formula images are small and a raster
// pass is memory-bound; splitting an image into strips would add a merge step for little gain).
// A batch is spread over threads, one image at a time per thread (label_batch).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
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

// First x >= from with row[x] != 0, or w: eight bytes at a time (the lowest set byte of a
// little-endian word is the first ink pixel), then byte by byte for the row's tail.
inline int64_t next_ink(const uint8_t* row, int64_t from, int64_t w) {
  int64_t x = from;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  for (uint64_t word; x + 8 <= w; x += 8) {
    std::memcpy(&word, row + x, sizeof word);
    if (word) return x + (__builtin_ctzll(word) >> 3);
  }
#endif
  while (x < w && !row[x]) ++x;
  return x;
}

}  // namespace detail

// Labels of the provisional sets and their running statistics, grown as sets are created.
struct Provisional {
  struct Run {
    int64_t offset;  // first pixel, y * w + x
    int64_t length;
    int32_t label;
  };
  std::vector<int32_t> parent;
  std::vector<int64_t> stats;  // kStatCols per label; row 0 unused
  std::vector<Run> runs;       // every run of ink, so the final pass rewrites runs, not pixels

  // Empties the tables for the next image but keeps their memory, so a steady stream of images
  // allocates (and page-faults) nothing.
  void reset() {
    parent.assign(1, 0);
    stats.assign(kStatCols, 0);
    runs.clear();
  }

  int32_t fresh(int64_t h, int64_t w) {
    const auto lab = static_cast<int32_t>(parent.size());
    parent.push_back(lab);
    stats.insert(stats.end(), {w, h, 0, 0, 0});
    return lab;
  }

  // Records the run [x0, x1) of row y in set `lab` and counts it in the set's statistics.
  void count(int32_t lab, int64_t x0, int64_t x1, int64_t y, int64_t w) {
    runs.push_back({y * w + x0, x1 - x0, lab});
    int64_t* s = &stats[static_cast<size_t>(lab) * kStatCols];
    s[0] = std::min(s[0], x0);
    s[1] = std::min(s[1], y);
    s[2] = std::max(s[2], x1);
    s[3] = std::max(s[3], y + 1);
    s[4] += x1 - x0;
  }
};

// Labels row y (up: the labelled row above, or nullptr for the first row) run by run. A run's
// first pixel takes its label from the row above (up b, else up-left a, else up-right c; a and c
// are joined when b is not ink) or opens a new set; the rest of the run copies it, joining the
// up-right neighbour's set when it is ink and the pixel above is not (otherwise it is joined
// already). Statistics are counted once per run.
template <typename T>
void label_row(const T* row, const int32_t* up, int32_t* out, int64_t h, int64_t w, int64_t y,
               Provisional& p) {
  static_assert(sizeof(T) == 1, "masks are bytes");
  int64_t x = 0;
  while (x < w) {
    // Background up to the next ink pixel, zeroed in one go.
    const int64_t gap = x;
    x = detail::next_ink(reinterpret_cast<const uint8_t*>(row), x, w);
    if (x > gap) std::memset(out + gap, 0, static_cast<size_t>(x - gap) * sizeof(int32_t));
    if (x == w) break;
    const int64_t start = x;
    int32_t lab = 0;
    if (up) {
      const int32_t a = x > 0 ? up[x - 1] : 0, b = up[x], c = x + 1 < w ? up[x + 1] : 0;
      lab = b ? b : (a ? a : c);
      if (a && c && !b) detail::unite(p.parent, a, c);
    }
    if (!lab) lab = p.fresh(h, w);
    out[x++] = lab;
    if (up) {
      for (; x + 1 < w && row[x]; ++x) {
        if (up[x + 1] && !up[x]) detail::unite(p.parent, up[x + 1], lab);
        out[x] = lab;
      }
      if (x + 1 == w && row[x]) out[x++] = lab;  // last column: no up-right neighbour
    } else {
      for (; x < w && row[x]; ++x) out[x] = lab;
    }
    p.count(lab, start, x, y, w);
  }
}

// Labels one h x w mask (nonzero = ink) into `labels` (h*w int32, row-major) and replaces `stats`
// with n rows of kStatCols int64 values. Returns n, the number of components.
template <typename T>
int64_t label_with_stats(const T* mask, int64_t h, int64_t w, int32_t* labels,
                         std::vector<int64_t>& stats) {
  // The tables' memory comes from (and goes back to) a per-thread cache; the work itself is
  // done on a local object, which the compiler optimises better than a thread_local one.
  thread_local Provisional cache;
  Provisional p = std::move(cache);
  p.reset();
  for (int64_t y = 0; y < h; ++y) {
    label_row(mask + y * w, y > 0 ? labels + (y - 1) * w : nullptr, labels + y * w, h, w, y, p);
  }
  // Flatten: a root is the smallest label of its set, so ascending order numbers the
  // components by first pixel; a non-root's parent is smaller and already numbered. Each
  // provisional set's statistics are folded into its component's row on the way.
  std::vector<int32_t>& lut = p.parent;
  int32_t n = 0;
  for (size_t k = 1; k < lut.size(); ++k) {
    lut[k] = lut[k] == static_cast<int32_t>(k) ? ++n : lut[lut[k]];
  }
  stats.assign(static_cast<size_t>(n) * kStatCols, 0);
  for (int32_t k = 0; k < n; ++k) {
    stats[k * kStatCols + 0] = w;
    stats[k * kStatCols + 1] = h;
  }
  for (size_t k = 1; k < lut.size(); ++k) {
    int64_t* s = &stats[static_cast<size_t>(lut[k] - 1) * kStatCols];
    const int64_t* q = &p.stats[k * kStatCols];
    s[0] = std::min(s[0], q[0]);
    s[1] = std::min(s[1], q[1]);
    s[2] = std::max(s[2], q[2]);
    s[3] = std::max(s[3], q[3]);
    s[4] += q[4];
  }
  // Final labels: each run is filled with its component's number (background is 0 already).
  for (const Provisional::Run& r : p.runs) {
    std::fill(labels + r.offset, labels + r.offset + r.length, lut[r.label]);
  }
  cache = std::move(p);
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
