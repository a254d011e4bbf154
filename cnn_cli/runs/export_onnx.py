"""Export a model to ONNX, built node by node from the NumPy weights (no torch, no tracing).

Each ``cnn`` layer maps to one standard ONNX operator with the same semantics:

=============  =====================================================================
cnn layer      ONNX node
=============  =====================================================================
conv2d         ``Conv`` (strides, pads, dilations, group; bias optional), PyTorch's
               weight layout (C_out, C_in/groups, kH, kW) is also ONNX's
padding        ``Pad`` (constant 0, spatial axes only)
maxpool2d      ``MaxPool``: padded positions never win (ONNX pads with -inf, as cnn)
avgpool2d      ``AveragePool`` with ``count_include_pad=1``: zeros count in the mean
global_avg_    ``GlobalAveragePool`` (N, C, 1, 1) then ``Flatten`` (axis 1) to (N, C)
pool
batchnorm2d,   ``BatchNormalization`` in inference form: the running mean and variance
batchnorm1d    (γ = 1, β = 0 written out when the layer has no affine parameters)
relu, ...      ``Relu``, ``LeakyRelu`` (alpha = negative_slope), ``Sigmoid``, ``Tanh``
flatten        ``Reshape`` to (N, C·H·W, 1, 1), the same (C, H, W) order
dense          ``Flatten`` (axis 1) then ``Gemm`` with transB (y = x Wᵀ + b)
dropout        ``Identity``: inference never drops
=============  =====================================================================

The graph takes ``input`` (N, C, H, W), already normalised as in training
(``(pixels - mean) / std``; both numbers are in the model's metadata), and gives
``logits`` (the model's own output shape) and ``probabilities`` (N, classes).
Everything is float32; the batch axis is dynamic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.errors import CnnError
from cnn_cli.model.network import Model
from cnn_cli.runs.checkpoint import atomic_write, class_names, load_checkpoint
from cnn_cli.version import __version__

OPSET = 17
INPUT_NAME = "input"
LOGITS_NAME = "logits"
PROBABILITIES_NAME = "probabilities"
BATCH_AXIS = "N"


def _onnx():
    try:
        import onnx
    except ImportError:
        raise CnnError("cnn export needs the onnx package: pip install 'cnn[onnx]'") from None
    return onnx


@dataclass
class ExportInfo:
    """What :func:`export_checkpoint` wrote."""

    path: Path
    nodes: int
    opset: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    num_classes: int


class _GraphBuilder:
    """Collects nodes and initializers (weights) with unique tensor names."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.helper = onnx.helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(value, name=name))
        return name

    def node(self, op: str, inputs: list[str], output: str, name: str, **attrs: Any) -> str:
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=name, **attrs))
        return output


def _layer_nodes(g: _GraphBuilder, layer: Any, x: str) -> str:
    """Append the node(s) for one layer reading tensor ``x``; return the output tensor's name."""
    name, kind = layer.name, layer.type_name
    out = f"{name}.out"
    params = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in layer.params.items()}
    if kind == "conv2d":
        inputs = [x, g.constant(f"{name}.weight", params["weight"])]
        if "bias" in params:
            inputs.append(g.constant(f"{name}.bias", params["bias"]))
        p_h, p_w = layer.padding
        return g.node(
            "Conv",
            inputs,
            out,
            name,
            kernel_shape=list(layer.kernel_size),
            strides=list(layer.stride),
            pads=[p_h, p_w, p_h, p_w],  # begin H, begin W, end H, end W
            dilations=list(layer.dilation),
            group=layer.groups,
        )
    if kind == "padding":
        p_h, p_w = layer.padding
        pads = g.constant(f"{name}.pads", np.array([0, 0, p_h, p_w, 0, 0, p_h, p_w], dtype=np.int64))
        return g.node("Pad", [x, pads], out, name, mode="constant")
    if kind in ("maxpool2d", "avgpool2d"):
        p_h, p_w = layer.padding
        geometry = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride), "pads": [p_h, p_w, p_h, p_w]}
        if kind == "maxpool2d":
            return g.node("MaxPool", [x], out, name, **geometry)
        return g.node("AveragePool", [x], out, name, count_include_pad=1, **geometry)
    if kind == "global_avg_pool":
        pooled = g.node("GlobalAveragePool", [x], f"{name}.pooled", f"{name}.pool")
        return g.node("Flatten", [pooled], out, name, axis=1)
    if kind in ("batchnorm2d", "batchnorm1d"):
        return _batch_norm_node(g, layer, x, out)
    if kind == "relu":
        return g.node("Relu", [x], out, name)
    if kind == "leaky_relu":
        return g.node("LeakyRelu", [x], out, name, alpha=float(layer.negative_slope))
    if kind == "sigmoid":
        return g.node("Sigmoid", [x], out, name)
    if kind == "tanh":
        return g.node("Tanh", [x], out, name)
    if kind == "dropout":
        return g.node("Identity", [x], out, name)
    if kind == "flatten":
        shape = g.constant(f"{name}.shape", np.array([0, -1, 1, 1], dtype=np.int64))  # 0: keep the batch size
        return g.node("Reshape", [x, shape], out, name)
    if kind == "dense":
        flat = g.node("Flatten", [x], f"{name}.flat", f"{name}.flatten", axis=1)
        inputs = [flat, g.constant(f"{name}.weight", params["weight"])]
        if "bias" in params:
            inputs.append(g.constant(f"{name}.bias", params["bias"]))
        return g.node("Gemm", inputs, out, name, transB=1)
    raise CnnError(f"{name}: layer type {kind!r} has no ONNX export")


def _batch_norm_node(g: _GraphBuilder, layer: Any, x: str, out: str) -> str:
    """``BatchNormalization`` as evaluation runs it: y = γ·(x − running_mean)/√(running_var + ε) + β."""
    name, channels = layer.name, layer.channels
    arrays = {
        "weight": layer.params.get("weight", np.ones(channels)),
        "bias": layer.params.get("bias", np.zeros(channels)),
        "running_mean": layer.buffers["running_mean"],
        "running_var": layer.buffers["running_var"],
    }
    inputs = [g.constant(f"{name}.{key}", np.ascontiguousarray(value, dtype=np.float32)) for key, value in arrays.items()]
    return g.node("BatchNormalization", [x, *inputs], out, name, epsilon=float(layer.eps))


def _probability_nodes(g: _GraphBuilder, model: Model, logits: str) -> None:
    """``probabilities`` (N, classes): softmax of the flattened logits, or [1 − σ(z), σ(z)] for one logit."""
    flat = g.node("Flatten", [logits], "logits.flat", "probabilities.flatten", axis=1)
    if model.loss.name == "binary_cross_entropy":
        p1 = g.node("Sigmoid", [flat], "p1", "probabilities.sigmoid")
        one = g.constant("one", np.array(1.0, dtype=np.float32))
        p0 = g.node("Sub", [one, p1], "p0", "probabilities.complement")
        g.node("Concat", [p0, p1], PROBABILITIES_NAME, "probabilities.concat", axis=1)
    else:  # softmax_cross_entropy and sum_squared_error both read their outputs through a softmax (Loss.probabilities)
        g.node("Softmax", [flat], PROBABILITIES_NAME, "probabilities.softmax", axis=1)


def model_to_onnx(model: Model, metadata: dict[str, Any] | None = None, opset: int = OPSET) -> Any:
    """Build an ``onnx.ModelProto`` for ``model`` (its current weights), checked with the full checker.

    Args:
        model: a built :class:`cnn_cli.model.network.Model`.
        metadata: extra key -> value pairs stored as the model's metadata (values JSON-encoded when not str).
        opset: the ONNX opset to target.
    """
    onnx = _onnx()
    helper = onnx.helper
    g = _GraphBuilder(onnx)
    tensor = INPUT_NAME
    for layer in model.layers:
        tensor = _layer_nodes(g, layer, tensor)
    g.nodes.append(helper.make_node("Identity", [tensor], [LOGITS_NAME], name="logits"))
    _probability_nodes(g, model, LOGITS_NAME)
    float32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes,
        "cnn",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, float32, [BATCH_AXIS, *model.input_shape])],
        outputs=[
            helper.make_tensor_value_info(LOGITS_NAME, float32, [BATCH_AXIS, *model.output_shape]),
            helper.make_tensor_value_info(PROBABILITIES_NAME, float32, [BATCH_AXIS, model.loss.num_classes]),
        ],
        initializer=g.initializers,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="cnn",
        producer_version=__version__,
        doc_string="Input: (N, C, H, W) float32, normalised as (pixels in [0, 1] - mean) / std.",
    )
    proto.ir_version = min(proto.ir_version, 8)  # readable by older runtimes; opset 17 needs IR 8
    entries = {"loss": model.loss.name, **(metadata or {})}
    helper.set_model_props(proto, {k: v if isinstance(v, str) else json.dumps(v) for k, v in entries.items()})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_checkpoint(checkpoint: str | Path, out: str | Path, opset: int = OPSET) -> ExportInfo:
    """Load a checkpoint and write its model as an ONNX file (atomically)."""
    ckpt, model = load_checkpoint(checkpoint)
    out = Path(out)
    if out.is_dir():
        raise CnnError(f"--onnx {out}: is a folder; give a file name like model.onnx")
    metadata = {
        "config_name": str(ckpt.config.get("name", "")),
        "classes": ckpt.data.get("classes"),
        "class_names": class_names(ckpt, model.loss.num_classes),
        "mean": ckpt.data.get("mean"),
        "std": ckpt.data.get("std"),
        "epoch": ckpt.epoch,
        "source_checkpoint": Path(checkpoint).name,
    }
    proto = model_to_onnx(model, metadata, opset)
    data = proto.SerializeToString()
    atomic_write(out, lambda handle: handle.write(data))
    return ExportInfo(out, len(proto.graph.node), opset, tuple(model.input_shape), tuple(model.output_shape), model.loss.num_classes)
