// torch.ops.abvoc.connected_components: the csrc/ccl labelling as a torch custom op.
//
// Registered with TORCH_LIBRARY so TorchScript can call it and torch.onnx can map it (through a
// custom symbolic) to a node of the "abvoc" domain. CPU only: the mask is a 2-D bool or uint8
// tensor; the result is (labels int32 HxW, stats int64 n x 5: x0, y0, x1, y1 exclusive, area).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstring>
#include <tuple>
#include <vector>

#include "ccl.hpp"

namespace {

std::tuple<at::Tensor, at::Tensor> connected_components(const at::Tensor& mask) {
  TORCH_CHECK(mask.dim() == 2, "connected_components: mask must be 2-D (H, W), got ",
              mask.dim(), " dimensions");
  TORCH_CHECK(mask.device().is_cpu(), "connected_components: mask must be on the CPU");
  TORCH_CHECK(mask.scalar_type() == at::kBool || mask.scalar_type() == at::kByte,
              "connected_components: mask must be bool or uint8, got ", mask.scalar_type());
  const at::Tensor m = mask.contiguous();
  const int64_t h = m.size(0), w = m.size(1);
  at::Tensor labels = at::empty({h, w}, m.options().dtype(at::kInt));
  std::vector<int64_t> stats;
  const auto* data = static_cast<const uint8_t*>(m.data_ptr());  // bool is one byte, 0 or 1
  const int64_t n = abvoc_ccl::label_with_stats(data, h, w, labels.data_ptr<int32_t>(), stats);
  at::Tensor out = at::empty({n, abvoc_ccl::kStatCols}, m.options().dtype(at::kLong));
  if (n > 0) std::memcpy(out.data_ptr<int64_t>(), stats.data(), stats.size() * sizeof(int64_t));
  return {labels, out};
}

}  // namespace

TORCH_LIBRARY(abvoc, m) {
  m.def("connected_components(Tensor mask) -> (Tensor labels, Tensor stats)");
}

TORCH_LIBRARY_IMPL(abvoc, CPU, m) { m.impl("connected_components", &connected_components); }
