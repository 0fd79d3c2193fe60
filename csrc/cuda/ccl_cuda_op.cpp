// CUDA implementation of torch.ops.abvoc.connected_components (schema in csrc/torch/ccl_op.cpp).
// Same outputs as the CPU op; reading the component count is the one host synchronisation.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "ccl_cuda.cuh"

namespace {

std::tuple<at::Tensor, at::Tensor> connected_components_cuda(const at::Tensor& mask) {
  TORCH_CHECK(mask.dim() == 2, "connected_components: mask must be 2-D (H, W), got ",
              mask.dim(), " dimensions");
  TORCH_CHECK(mask.scalar_type() == at::kBool || mask.scalar_type() == at::kByte,
              "connected_components: mask must be bool or uint8, got ", mask.scalar_type());
  const c10::cuda::CUDAGuard guard(mask.device());
  const at::Tensor m = mask.contiguous();
  const int64_t h = m.size(0), w = m.size(1);
  TORCH_CHECK(h * w < (int64_t{1} << 31), "connected_components: mask too large for int32");
  auto opts = m.options();
  at::Tensor labels = at::empty({h, w}, opts.dtype(at::kInt));
  at::Tensor stats = at::empty({abvoc_ccl_cuda::max_components(h, w), abvoc_ccl_cuda::kStatCols},
                               opts.dtype(at::kInt));
  at::Tensor count = at::zeros({1}, opts.dtype(at::kInt));
  const size_t bytes = abvoc_ccl_cuda::workspace_bytes(h, w);
  at::Tensor workspace = at::empty({static_cast<int64_t>(bytes)}, opts.dtype(at::kByte));
  const cudaError_t err = abvoc_ccl_cuda::label_with_stats(
      static_cast<const uint8_t*>(m.data_ptr()), static_cast<int32_t>(h),
      static_cast<int32_t>(w), labels.data_ptr<int32_t>(), stats.data_ptr<int32_t>(),
      count.data_ptr<int32_t>(), workspace.data_ptr(), bytes,
      c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "connected_components: ", cudaGetErrorString(err));
  const int64_t n = count.item<int32_t>();
  return {labels, stats.narrow(0, 0, n).to(at::kLong)};
}

}  // namespace

TORCH_LIBRARY_IMPL(abvoc, CUDA, m) {
  m.impl("connected_components", &connected_components_cuda);
}
