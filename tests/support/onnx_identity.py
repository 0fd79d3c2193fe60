"""The smallest ONNX model a session loads: its output is its input, as onnxruntime received it
(float32 rows of two by default, for tests of session options where what the model computes
does not matter; a string or int64 column for tests of how values reach a model)."""

from __future__ import annotations

from onnx import TensorProto, helper


def identity_model(elem_type: int = TensorProto.FLOAT, width: int = 2,
                   names: tuple[str, str] = ("x", "y")) -> bytes:
    """`names[1]` = `names[0]`, both of `elem_type` and shape [None, width]."""
    source, target = names
    node = helper.make_node("Identity", [source], [target])
    graph = helper.make_graph(
        [node], "identity", [helper.make_tensor_value_info(source, elem_type, [None, width])],
        [helper.make_tensor_value_info(target, elem_type, [None, width])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
