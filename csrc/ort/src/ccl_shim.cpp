// The csrc/ccl labelling behind a C interface, for the Rust custom-op library (src/lib.rs).
//
// The stats rows go straight into a buffer the caller hands back from `stats_out` once the
// component count is known (the ORT output, whose shape is data-dependent). No C++ exception
// crosses into Rust: a failure comes back as a negative count with a message in `error`.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <vector>

#include "ccl.hpp"

extern "C" {

// Returns a buffer for n x kStatCols int64 values (any pointer when n is 0), or nullptr when it
// cannot (the caller keeps its own reason).
typedef int64_t* (*abvoc_stats_out)(void* ctx, int64_t n);

int64_t abvoc_ccl_stat_cols() { return abvoc_ccl::kStatCols; }

// Labels an h x w byte mask (nonzero = ink) into `labels` (h*w int32, row-major) and writes the
// n component rows into the buffer `stats_out(ctx, n)` returns. Returns n, or -1 with a message
// in `error` (a NUL-terminated string of at most error_len bytes).
int64_t abvoc_ccl_label(const uint8_t* mask, int64_t h, int64_t w, int32_t* labels,
                        abvoc_stats_out stats_out, void* ctx, char* error, size_t error_len) {
  try {
    thread_local std::vector<int64_t> stats;
    const int64_t n = abvoc_ccl::label_with_stats(mask, h, w, labels, stats);
    int64_t* out = stats_out(ctx, n);
    if (out == nullptr && n > 0) {
      std::snprintf(error, error_len, "could not allocate the stats output (%lld rows)",
                    static_cast<long long>(n));
      return -1;
    }
    if (n > 0) std::memcpy(out, stats.data(), stats.size() * sizeof(int64_t));
    return n;
  } catch (const std::exception& e) {
    std::snprintf(error, error_len, "labelling failed: %s", e.what());
  } catch (...) {
    std::snprintf(error, error_len, "labelling failed with an unknown C++ exception");
  }
  return -1;
}

}  // extern "C"
