"""The smallest ONNX model a session loads: y = x for float32 rows of two (tests of session
options, where what the model computes does not matter)."""

from __future__ import annotations

from onnx import TensorProto, helper


def identity_model() -> bytes:
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
