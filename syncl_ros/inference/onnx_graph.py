"""ONNX graph clean-up and checks for the exported tracker graphs.

The TorchScript exporter records shape arithmetic (Shape -> Gather -> Concat
-> Reshape) even when every input shape is fixed, which leaves tensors whose
shapes only resolve at run time. TensorRT copes with that, but a graph whose
shapes are all known when it is built is simpler to check and to build. So the
exported graphs are folded here: Shape of a statically shaped tensor becomes a
constant, every node whose inputs are all constants is evaluated once (with
onnx's reference evaluator), pass-through Identity nodes are dropped, and the
passes repeat until nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

# Folded tensors larger than this stay computed in the graph: a constant that
# big would bloat the file more than it saves at run time.
MAX_FOLDED_ELEMENTS = 1 << 22


def static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Name -> shape for every tensor whose dimensions are all known numbers."""
    graph = model.graph
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            continue
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(int(d.dim_value) for d in dims)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def _shape_constant(node: onnx.NodeProto, shape: tuple[int, ...]) -> NDArray[np.int64]:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    start, end = attrs.get("start", 0), attrs.get("end", len(shape))
    return np.asarray(shape[start:end], dtype=np.int64)


def _evaluate(
    node: onnx.NodeProto, values: dict[str, NDArray[np.generic]], opset: int
) -> list[NDArray[np.generic]] | None:
    feeds = {name: values[name] for name in node.input if name}
    try:
        outputs = ReferenceEvaluator(node, opsets={"": opset}).run(None, feeds)
    except Exception:  # an op the reference evaluator lacks: leave the node in the graph
        return None
    return [np.asarray(o) for o in outputs]


def _fold_once(model: onnx.ModelProto, opset: int) -> tuple[onnx.ModelProto, bool]:
    graph = model.graph
    shapes = static_shapes(onnx.shape_inference.infer_shapes(model))
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    protected = {o.name for o in graph.output}
    kept: list[onnx.NodeProto] = []
    changed = False
    for node in graph.node:
        folded = _fold_node(node, values, shapes, protected, opset)
        if folded is None:
            kept.append(node)
            continue
        values.update(zip(node.output, folded, strict=True))
        changed = True
    return _rebuild(model, kept, values), changed


def _fold_node(
    node: onnx.NodeProto,
    values: dict[str, NDArray[np.generic]],
    shapes: dict[str, tuple[int, ...]],
    protected: set[str],
    opset: int,
) -> list[NDArray[np.generic]] | None:
    if protected.intersection(node.output) or any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute
    ):
        return None
    if node.op_type == "Shape" and node.input[0] in shapes:
        return [_shape_constant(node, shapes[node.input[0]])]
    if not all(name in values for name in node.input if name):
        return None
    out = _evaluate(node, values, opset)
    if out is None or any(o.size > MAX_FOLDED_ELEMENTS for o in out):
        return None
    return out


def _rebuild(
    model: onnx.ModelProto, nodes: list[onnx.NodeProto], values: dict[str, NDArray[np.generic]]
) -> onnx.ModelProto:
    graph = model.graph
    used = {name for node in nodes for name in node.input} | {o.name for o in graph.output}
    order = [init.name for init in graph.initializer]
    seen = set(order)
    order += [name for name in values if name not in seen]
    inits = [numpy_helper.from_array(values[name], name) for name in order if name in used]
    new_graph = helper.make_graph(
        nodes, graph.name, list(graph.input), list(graph.output), inits, doc_string=graph.doc_string
    )
    out = helper.make_model(
        new_graph,
        opset_imports=list(model.opset_import),
        producer_name=model.producer_name,
        producer_version=model.producer_version,
        ir_version=model.ir_version,
    )
    out.metadata_props.extend(model.metadata_props)
    return out


def drop_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove Identity nodes by wiring their consumers to the Identity's input."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    alias: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        if node.op_type == "Identity" and node.output[0] not in outputs:
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
            continue
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def fold_static_graph(model: onnx.ModelProto, max_passes: int = 10) -> onnx.ModelProto:
    """Fold shape arithmetic and constant subgraphs; the result has the same inputs and outputs."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    model = drop_identities(model)
    for _ in range(max_passes):
        model, changed = _fold_once(model, opset)
        if not changed:
            break
    # Record the now-static intermediate shapes in the file (value_info) for tools and checks.
    return onnx.shape_inference.infer_shapes(drop_identities(model), strict_mode=True)


# -- checks -----------------------------------------------------------------------


def operator_types(model: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in model.graph.node}


def dynamic_tensors(model: onnx.ModelProto) -> list[str]:
    """Names of graph inputs, outputs and intermediate tensors with an unknown or symbolic dimension."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = inferred.graph
    known = static_shapes(inferred)
    produced = [name for node in graph.node for name in node.output if name]
    names = [*(vi.name for vi in graph.input), *produced, *(o.name for o in graph.output)]
    return [name for name in names if name not in known]


def topk_constant_k(model: onnx.ModelProto) -> list[int]:
    """K of every TopK node; raises ValueError where K is not a constant initializer."""
    inits = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    ks = []
    for node in model.graph.node:
        if node.op_type != "TopK":
            continue
        if node.input[1] not in inits:
            raise ValueError(f"TopK node {node.name!r}: K is not a constant initializer")
        ks.append(int(np.asarray(inits[node.input[1]]).reshape(-1)[0]))
    return ks


def read_operator_list(path: Path) -> set[str]:
    """Operator names from a text file: one per line; '#' starts a comment."""
    names: set[str] = set()
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.add(name)
    return names


def unsupported_operators(model: onnx.ModelProto, supported: Iterable[str]) -> set[str]:
    return operator_types(model) - set(supported)


TENSORRT_OPS_FILE = Path(__file__).with_name("tensorrt_onnx_ops.txt")
TOPK_MAX_K = 3840  # TensorRT's TopK limit


def tensorrt_problems(model: onnx.ModelProto, supported: Iterable[str]) -> list[str]:
    """What would stop TensorRT from building `model` with static shapes; empty when nothing."""
    problems = [
        f"operator {op} not in the TensorRT list" for op in sorted(unsupported_operators(model, supported))
    ]
    if "NonZero" in operator_types(model):
        problems.append("NonZero (data-dependent output shape)")
    dynamic = dynamic_tensors(model)
    if dynamic:
        problems.append(f"{len(dynamic)} tensors without static shapes, e.g. {dynamic[0]}")
    try:
        problems += [f"TopK k={k} >= {TOPK_MAX_K}" for k in topk_constant_k(model) if k >= TOPK_MAX_K]
    except ValueError as err:
        problems.append(str(err))
    return problems


def check_tensorrt_operators(path: Path) -> str:
    """One line for `syncl export`: is the graph within what TensorRT 10 parses with static shapes?"""
    if not TENSORRT_OPS_FILE.is_file():
        return f"skipped ({TENSORRT_OPS_FILE.name} is not installed)"
    model = onnx.load(str(path))
    problems = tensorrt_problems(model, read_operator_list(TENSORRT_OPS_FILE))
    if problems:
        return "PROBLEMS: " + "; ".join(problems)
    return f"ok ({len(operator_types(model))} operator types, all static shapes)"
