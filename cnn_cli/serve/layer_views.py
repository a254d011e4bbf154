"""Every layer of one forward and backward pass, as float arrays the draw page can scale, hover and read.

For each layer with a spatial output (conv, activation, pooling, padding): its output
``(C, H, W)`` and ∂target/∂(output), the first :data:`MAX_CHANNELS_SHOWN` channels; after a
max-pool, its winners (the input positions whose value it passed on, found by
:func:`cnn_cli.nn.pool.maxpool2d_backward` of an all-ones gradient, so ties go where training
sends them). For each conv layer with a spatial kernel: its weights and their gradient for this
one input. Arrays travel as little-endian float32 in base64 with their minimum and maximum,
so the page shows exact values on hover and draws any colour scale it likes.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from cnn_cli.layers.conv import Conv2D
from cnn_cli.layers.pool import MaxPool2D
from cnn_cli.model.network import LayerGradient, LayerTrace
from cnn_cli.nn.pool import maxpool2d_backward, maxpool2d_forward

MAX_CHANNELS_SHOWN = 64  # feature-map panels per layer; larger layers show their first 64
MAX_KERNELS_SHOWN = 64  # kernels w[o, c] per conv layer, o-major


def encode_float(values: np.ndarray) -> dict[str, Any]:
    """An array as base64 little-endian float32, with its shape, minimum and maximum (0 for an empty array)."""
    data = np.ascontiguousarray(values, dtype="<f4")
    low = float(data.min()) if data.size else 0.0
    high = float(data.max()) if data.size else 0.0
    return {"shape": list(data.shape), "min": low, "max": high, "float32": base64.b64encode(data.tobytes()).decode("ascii")}


def pool_winners(step: LayerTrace) -> np.ndarray:
    """(C, H, W) of the max-pool's input: 1 where a window's maximum sat, else 0."""
    layer = step.layer
    if not isinstance(layer, MaxPool2D):
        raise TypeError(f"{layer.name}: not a max-pool layer")
    out, cache = maxpool2d_forward(step.input, layer.kernel_size, layer.stride, layer.padding)
    return (maxpool2d_backward(np.ones_like(out), cache)[0] != 0).astype(np.float32)


def layer_views(steps: list[LayerTrace], backward: list[LayerGradient]) -> list[dict[str, Any]]:
    """Every layer with a (C, H, W) output: its values and gradient (first channels), and a max-pool's winners."""
    views = []
    for index, (step, grad) in enumerate(zip(steps, backward, strict=True)):
        output = step.output[0]
        if output.ndim != 3 or output.shape[1] * output.shape[2] <= 1:
            continue
        view: dict[str, Any] = {
            "layer": step.layer.name,
            "type": step.layer.type_name,
            "index": index,
            "shape": list(output.shape),
            "input_layer": steps[index - 1].layer.name if index else "input",
            "next": steps[index + 1].layer.type_name if index + 1 < len(steps) else "",
            "values": encode_float(output[:MAX_CHANNELS_SHOWN]),
            "grad": encode_float(grad.grad_output[0][:MAX_CHANNELS_SHOWN]),
        }
        if step.layer.type_name == "maxpool2d":
            view["winners"] = encode_float(pool_winners(step)[:MAX_CHANNELS_SHOWN])
        views.append(view)
    return views


def weight_views(steps: list[LayerTrace]) -> list[dict[str, Any]]:
    """Each conv layer with a spatial kernel: the first kernels w[o, c] and ∂target/∂w (filled by the backward pass)."""
    views = []
    for step in steps:
        layer = step.layer
        if not isinstance(layer, Conv2D) or tuple(layer.kernel_size) == (1, 1):
            continue
        weight, grad = layer.params["weight"], layer.grads.get("weight")
        c_out, c_in, k_h, k_w = weight.shape
        views.append(
            {
                "layer": layer.name,
                "shape": [c_out, c_in, k_h, k_w],
                "weight": encode_float(weight.reshape(-1, k_h, k_w)[:MAX_KERNELS_SHOWN]),
                "grad": encode_float(np.zeros_like(weight) if grad is None else grad.reshape(-1, k_h, k_w)[:MAX_KERNELS_SHOWN]),
            }
        )
    return views


def channel_norms(grad: np.ndarray) -> np.ndarray:
    """(C, H, W) gradient -> (H, W): its L2 norm over channels at each position (float64 sums)."""
    return np.sqrt(np.sum(np.square(grad, dtype=np.float64), axis=0))
