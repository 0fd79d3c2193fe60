// TensorRT plugin (IPluginV3) running the csrc/cuda labelling kernel.
//
// Name "ConnectedComponents", version "1", empty namespace: the name of the ONNX node that
// torch_ops exports, so TensorRT's ONNX parser resolves that node to this plugin. Input: one
// 2-D bool/uint8 mask. Outputs: labels (int32, the mask's shape), stats (int32, n x 5: x0, y0,
// x1, y1 exclusive, area) and n, a 0-D size tensor: the stats' row count is data-dependent, so it
// is declared with IExprBuilder::declareSizeTensor, bounded by one component per 2x2 cell.
// The library exports getCreators, so IPluginRegistry::loadLibrary registers the creator.
// Built only where TensorRT's headers and nvcc exist (workloads/ocr/tensorrt_plugin.py).
#include <NvInfer.h>
#include <NvInferRuntime.h>
#include <cuda_runtime.h>

#include <cstring>
#include <exception>
#include <memory>
#include <vector>

#include "ccl_cuda.cuh"

using namespace nvinfer1;

namespace {

constexpr char const* kName = "ConnectedComponents";
constexpr char const* kVersion = "1";
constexpr char const* kNamespace = "";

class ConnectedComponentsPlugin : public IPluginV3,
                                  public IPluginV3OneCore,
                                  public IPluginV3OneBuild,
                                  public IPluginV3OneRuntime {
 public:
  ConnectedComponentsPlugin() { mFields.nbFields = 0, mFields.fields = nullptr; }
  ConnectedComponentsPlugin(ConnectedComponentsPlugin const&) = default;

  // IPluginV3
  IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override {
    switch (type) {
      case PluginCapabilityType::kBUILD:
        return static_cast<IPluginV3OneBuild*>(this);
      case PluginCapabilityType::kRUNTIME:
        return static_cast<IPluginV3OneRuntime*>(this);
      case PluginCapabilityType::kCORE:
        return static_cast<IPluginV3OneCore*>(this);
    }
    return nullptr;
  }

  IPluginV3* clone() noexcept override {
    try {
      return new ConnectedComponentsPlugin(*this);
    } catch (std::exception const&) {
      return nullptr;
    }
  }

  // IPluginV3OneCore
  char const* getPluginName() const noexcept override { return kName; }
  char const* getPluginVersion() const noexcept override { return kVersion; }
  char const* getPluginNamespace() const noexcept override { return kNamespace; }

  // IPluginV3OneBuild
  int32_t getNbOutputs() const noexcept override { return 3; }

  int32_t configurePlugin(DynamicPluginTensorDesc const*, int32_t nbInputs,
                          DynamicPluginTensorDesc const*, int32_t nbOutputs) noexcept override {
    return nbInputs == 1 && nbOutputs == 3 ? 0 : -1;
  }

  bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                 int32_t nbInputs, int32_t) noexcept override {
    PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR) return false;
    if (pos < nbInputs) return d.type == DataType::kBOOL || d.type == DataType::kUINT8;
    return d.type == DataType::kINT32;  // labels, stats and the size tensor
  }

  int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const*,
                             int32_t) const noexcept override {
    for (int32_t i = 0; i < nbOutputs; ++i) outputTypes[i] = DataType::kINT32;
    return 0;
  }

  int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t,
                          DimsExprs* outputs, int32_t nbOutputs,
                          IExprBuilder& expr) noexcept override {
    if (nbInputs != 1 || nbOutputs != 3 || inputs[0].nbDims != 2) return -1;
    outputs[0] = inputs[0];
    using Op = DimensionOperation;
    IDimensionExpr const* two = expr.constant(2);
    IDimensionExpr const* rows = expr.operation(Op::kCEIL_DIV, *inputs[0].d[0], *two);
    IDimensionExpr const* cols = expr.operation(Op::kCEIL_DIV, *inputs[0].d[1], *two);
    IDimensionExpr const* upper = expr.operation(Op::kPROD, *rows, *cols);
    // Formula images hold tens of symbols; the optimum only guides TensorRT's allocation.
    IDimensionExpr const* opt = expr.operation(Op::kMIN, *upper, *expr.constant(256));
    IDimensionExpr const* n = expr.declareSizeTensor(2, *opt, *upper);
    outputs[1].nbDims = 2;
    outputs[1].d[0] = n;
    outputs[1].d[1] = expr.constant(abvoc_ccl_cuda::kStatCols);
    outputs[2].nbDims = 0;  // the size tensor
    return 0;
  }

  size_t getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t,
                          DynamicPluginTensorDesc const*, int32_t) const noexcept override {
    return abvoc_ccl_cuda::workspace_bytes(inputs[0].max.d[0], inputs[0].max.d[1]);
  }

  // IPluginV3OneRuntime
  int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const*,
                        int32_t) noexcept override {
    return nbInputs == 1 && in[0].dims.nbDims == 2 ? 0 : -1;
  }

  int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*,
                  void const* const* inputs, void* const* outputs, void* workspace,
                  cudaStream_t stream) noexcept override {
    auto const h = static_cast<int32_t>(inputDesc[0].dims.d[0]);
    auto const w = static_cast<int32_t>(inputDesc[0].dims.d[1]);
    cudaError_t const err = abvoc_ccl_cuda::label_with_stats(
        static_cast<uint8_t const*>(inputs[0]), h, w, static_cast<int32_t*>(outputs[0]),
        static_cast<int32_t*>(outputs[1]), static_cast<int32_t*>(outputs[2]), workspace,
        abvoc_ccl_cuda::workspace_bytes(h, w), stream);
    return err == cudaSuccess ? 0 : -1;
  }

  IPluginV3* attachToContext(IPluginResourceContext*) noexcept override { return clone(); }

  PluginFieldCollection const* getFieldsToSerialize() noexcept override { return &mFields; }

 private:
  PluginFieldCollection mFields{};  // no attributes
};

class ConnectedComponentsCreator : public IPluginCreatorV3One {
 public:
  ConnectedComponentsCreator() { mFields.nbFields = 0, mFields.fields = nullptr; }

  char const* getPluginName() const noexcept override { return kName; }
  char const* getPluginVersion() const noexcept override { return kVersion; }
  char const* getPluginNamespace() const noexcept override { return kNamespace; }
  PluginFieldCollection const* getFieldNames() noexcept override { return &mFields; }

  IPluginV3* createPlugin(char const*, PluginFieldCollection const*,
                          TensorRTPhase) noexcept override {
    try {
      return new ConnectedComponentsPlugin();
    } catch (std::exception const&) {
      return nullptr;
    }
  }

 private:
  PluginFieldCollection mFields{};
};

}  // namespace

// Entry point IPluginRegistry::loadLibrary looks up in a plugin library.
extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
  static ConnectedComponentsCreator creator;
  static IPluginCreatorInterface* const creators[] = {&creator};
  nbCreators = 1;
  return creators;
}
