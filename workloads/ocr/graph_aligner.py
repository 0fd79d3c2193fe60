"""The aligner appended to the one graph: symbols in, each symbol's relation out.

The aligner's grouping (fractions and roots, recursively) and its left-to-right scan are tree
building of data-dependent depth, which ONNX's operators do not express; the op library
(csrc/ort) runs them as two nodes of the "abvoc" domain around the aligner's network:

    logits -> Softmax -> symbol_probs -> ArgMax -> classes
    (boxes, classes, image_index) -> abvoc::AlignerFeatures -> pair features
    pair features -> the aligner network (its own ONNX export, names prefixed) -> Softmax
    (boxes, classes, image_index, relation probs) -> abvoc::AlignerScan
        -> parent, relation, relation_prob

so one ONNX Runtime session reads an image batch into boxes, classes and relations; only the
converter's string building (aligner relations to LaTeX) stays in Python.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, compose, helper

from workloads.ocr.aligner import FLAT, MAX_DEPTH
from workloads.ocr.components import ONNX_DOMAIN
from workloads.ocr.formulas import CLASS_INDEX, SQRT, SYMBOL_CLASSES

OUTPUTS = ("classes", "symbol_probs", "parent", "relation", "relation_prob")
_PREFIX = "aligner/"


def aligner_attributes() -> dict[str, object]:
    """Which classes hold fractions and roots and which are flat, and how deep structures
    nest, as the ops' attributes."""
    return {"num_classes": len(SYMBOL_CLASSES), "bar_class": CLASS_INDEX["-"],
            "root_class": CLASS_INDEX[SQRT],
            "flat_classes": sorted(CLASS_INDEX[c] for c in FLAT), "max_depth": MAX_DEPTH}


def _opset(model: onnx.ModelProto, domain: str = "") -> int | None:
    return next((o.version for o in model.opset_import if o.domain == domain), None)


def append_aligner(graph: onnx.ModelProto, aligner: onnx.ModelProto) -> onnx.ModelProto:
    """`graph` (outputs boxes, image_index and logits) with the aligner after it, as above."""
    if _opset(graph) != _opset(aligner):
        raise ValueError(f"the aligner is exported at opset {_opset(aligner)} and the graph at "
                         f"{_opset(graph)}; export both at one opset")
    net = compose.add_prefix(aligner, _PREFIX)
    net_in, net_out = net.graph.input[0].name, net.graph.output[0].name
    attrs = aligner_attributes()
    symbols = ["boxes", "classes", "image_index"]
    nodes = [
        helper.make_node("Softmax", ["logits"], ["symbol_probs"], axis=1),
        helper.make_node("ArgMax", ["symbol_probs"], ["classes"], axis=1, keepdims=0),
        helper.make_node("AlignerFeatures", symbols, [net_in], domain=ONNX_DOMAIN, **attrs),
        *net.graph.node,
        helper.make_node("Softmax", [net_out], [_PREFIX + "probs"], axis=1),
        helper.make_node("AlignerScan", [*symbols, _PREFIX + "probs"],
                         ["parent", "relation", "relation_prob"], domain=ONNX_DOMAIN, **attrs),
    ]
    out = onnx.ModelProto()
    out.CopyFrom(graph)
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(net.graph.initializer)
    out.graph.output.extend([
        helper.make_tensor_value_info("classes", TensorProto.INT64, ["symbols"]),
        helper.make_tensor_value_info("symbol_probs", TensorProto.FLOAT,
                                      ["symbols", len(SYMBOL_CLASSES)]),
        helper.make_tensor_value_info("parent", TensorProto.INT64, ["symbols"]),
        helper.make_tensor_value_info("relation", TensorProto.INT64, ["symbols"]),
        helper.make_tensor_value_info("relation_prob", TensorProto.FLOAT, ["symbols"]),
    ])
    onnx.checker.check_model(out)
    return out
