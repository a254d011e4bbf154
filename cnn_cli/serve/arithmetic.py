"""The arithmetic behind one feature-map pixel, as JSON-ready numbers (CNN Explainer's click, on the real network).

For the output ``z[o, i, j]`` of a conv layer (before its activation), with the window
the kernel read from the layer's padded input ``x_pad``:

- forward (``cnn docs conv2d``, the sum :func:`cnn_cli.learn.explain.report.products` writes
  for ``cnn explain cross-correlation``): ``z[o, i, j] = b[o] + Σ_c Σ_{a,b} x_pad[c, i·s + a·d, j·s + b·d] · w[o, c, a, b]``,
  then the ReLU that follows it, ``max(0, z)``;
- where that window lies on the 28×28 input: its receptive field, walked back layer by layer
  through every window (``r_in = r_out·s − p`` ... ``r_out·s − p + d(k − 1)``);
- backward (col2im, ``cnn docs conv2d``): the window's share of ``∂/∂x`` is ``∂/∂z[o, i, j] · w[o]``, what
  :func:`cnn_cli.nn.conv.conv2d_backward` gives for an upstream gradient that is zero except there;
  and one input pixel's ``∂/∂x`` as the sum of the shares of every window and channel that read it.

The values are the model's own: the layer's input and output from :meth:`Model.trace`, the
gradients from :meth:`Model.backward_trace` (the same passes as :func:`cnn_cli.serve.analysis.analyze`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_cli.errors import CnnError
from cnn_cli.layers.conv import Conv2D
from cnn_cli.learn.explain.report import products
from cnn_cli.model.network import LayerGradient, LayerTrace
from cnn_cli.nn import conv as nn_conv

MAX_CONTRIBUTIONS = 1024  # terms of one input pixel's ∂/∂x sum listed (every window and channel that read it)


def conv_step_index(steps: list[LayerTrace], layer_name: str) -> int:
    """The trace index of the conv layer a click means: the layer itself, or the conv an activation follows."""
    names = [step.layer.name for step in steps]
    if layer_name not in names:
        raise CnnError(f"no layer named {layer_name!r}; the layers are {', '.join(names)}")
    index = names.index(layer_name)
    # Back over elementwise activations only (no parameters, the same shape in and out): relu(z)[c, y, x] is z[c, y, x]'s.
    while index > 0 and steps[index].layer.type_name != "conv2d" and not steps[index].layer.params:
        if steps[index].input.shape != steps[index].output.shape:
            break
        index -= 1
    if steps[index].layer.type_name != "conv2d":
        raise CnnError(f"{layer_name}: its pixels are not the output of a conv layer; click a conv layer's map or its ReLU's")
    return index


def conv_layer(step: LayerTrace) -> Conv2D:
    """The step's layer, which must be a convolution."""
    if not isinstance(step.layer, Conv2D):
        raise CnnError(f"{step.layer.name}: not a conv layer")
    return step.layer


def receptive_field(steps: list[LayerTrace], index: int, row: int, col: int) -> dict[str, int]:
    """Rows and columns of the network's input that output pixel (row, col) of layer ``index`` depends on (inclusive).

    Walks back through every layer with a window (kernel_size, stride, padding, dilation) or a padding; other layers
    keep positions. The bounds may lie outside the image (in the zero padding); ``clipped`` ones are the image's part.
    """
    top, bottom, left, right = row, row, col, col
    for step in reversed(steps[: index + 1]):
        layer: Any = step.layer  # any layer with a window or a padding moves positions; read by attribute
        pad_h, pad_w = getattr(layer, "padding", (0, 0))
        if hasattr(layer, "kernel_size"):
            (k_h, k_w), (s_h, s_w) = layer.kernel_size, layer.stride
            d_h, d_w = getattr(layer, "dilation", (1, 1))
            top, bottom = top * s_h - pad_h, bottom * s_h - pad_h + d_h * (k_h - 1)
            left, right = left * s_w - pad_w, right * s_w - pad_w + d_w * (k_w - 1)
        else:
            top, bottom, left, right = top - pad_h, bottom - pad_h, left - pad_w, right - pad_w
    _, height, width = steps[0].input.shape[1:]
    return {
        "top": top,
        "bottom": bottom,
        "left": left,
        "right": right,
        "clipped_top": max(0, top),
        "clipped_bottom": min(height - 1, bottom),
        "clipped_left": max(0, left),
        "clipped_right": min(width - 1, right),
    }


def _window(step: LayerTrace, row: int, col: int) -> tuple[np.ndarray, int, int]:
    """(C_in, kH, kW) values the kernel read for output (row, col), and the window's top-left in the unpadded input."""
    layer = conv_layer(step)
    (k_h, k_w), (s_h, s_w), (d_h, d_w), (p_h, p_w) = layer.kernel_size, layer.stride, layer.dilation, layer.padding
    padded = np.pad(step.input[0].astype(np.float64), ((0, 0), (p_h, p_h), (p_w, p_w)))
    top, left = row * s_h, col * s_w
    window = padded[:, top : top + d_h * (k_h - 1) + 1 : d_h, left : left + d_w * (k_w - 1) + 1 : d_w]
    return window, top - p_h, left - p_w


def forward_arithmetic(steps: list[LayerTrace], index: int, channel: int, row: int, col: int) -> dict[str, Any]:
    """The sum of products behind ``z[channel, row, col]`` of conv layer ``index``, its bias, and the ReLU after it."""
    step = steps[index]
    layer = conv_layer(step)
    _, c_out, out_h, out_w = step.output.shape
    if not (0 <= channel < c_out and 0 <= row < out_h and 0 <= col < out_w):
        raise CnnError(f"{layer.name}: pixel (channel {channel}, y {row}, x {col}) is outside its {c_out}×{out_h}×{out_w} output")
    if layer.groups != 1:
        raise CnnError(f"{layer.name}: a grouped convolution's arithmetic is not shown")
    window, top, left = _window(step, row, col)
    kernel = layer.params["weight"][channel].astype(np.float64)
    per_channel = []
    for c in range(window.shape[0]):
        written, total = products(window[c], kernel[c])
        per_channel.append({"window": window[c].tolist(), "kernel": kernel[c].tolist(), "written": written, "sum": total})
    bias = float(layer.params["bias"][channel]) if "bias" in layer.params else 0.0
    total = sum(entry["sum"] for entry in per_channel) + bias
    after = steps[index + 1].layer if index + 1 < len(steps) else None
    activation = None
    if after is not None and not after.params and steps[index + 1].output.shape == step.output.shape:
        activation = {"layer": after.name, "type": after.type_name, "value": float(steps[index + 1].output[0, channel, row, col])}
    return {
        "layer": layer.name,
        "channel": channel,
        "y": row,
        "x": col,
        "input_layer": steps[index - 1].layer.name if index else "input",
        "kernel_size": list(layer.kernel_size),
        "stride": list(layer.stride),
        "padding": list(layer.padding),
        "dilation": list(layer.dilation),
        "window_top": top,
        "window_left": left,
        "channels": per_channel,
        "bias": bias,
        "sum": total,
        "output": float(step.output[0, channel, row, col]),
        "activation": activation,
        "receptive_field": receptive_field(steps, index, row, col),
    }


def backward_arithmetic(step: LayerTrace, grad: LayerGradient, channel: int, row: int, col: int) -> dict[str, Any]:
    """col2im for one window: its share of ∂/∂(layer input), and one input pixel's ∂/∂x as the sum of every share.

    The share is :func:`cnn_cli.nn.conv.conv2d_backward` run on the layer's input with an upstream gradient that is
    ``∂/∂z[channel, row, col]`` at that pixel and zero elsewhere; taps in the zero padding are None (their share
    is cropped away with the padding). The pixel summed is the window's centre tap (first input channel), moved
    inside the image where the centre lies in the padding.
    """
    layer = conv_layer(step)
    x = step.input.astype(np.float64)
    weight = layer.params["weight"].astype(np.float64)
    _, cache = nn_conv.conv2d_forward(x, weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)
    upstream = np.zeros(step.output.shape, dtype=np.float64)
    g = float(grad.grad_output[0, channel, row, col])
    upstream[0, channel, row, col] = g
    share, _, _ = nn_conv.conv2d_backward(upstream, cache)
    if share is None:  # pragma: no cover - conv2d_backward returns it when asked (the default)
        raise RuntimeError(f"{layer.name}: conv2d_backward returned no input gradient")
    window, top, left = _window(step, row, col)
    (k_h, k_w), (d_h, d_w) = layer.kernel_size, layer.dilation
    height, width = x.shape[2:]
    rows = [top + a * d_h for a in range(k_h)]  # a tap in the zero padding (outside 0..H-1) passes nothing back
    cols = [left + b * d_w for b in range(k_w)]
    share_window = [
        [[float(share[0, c, r, s]) if 0 <= r < height and 0 <= s < width else None for s in cols] for r in rows] for c in range(x.shape[1])
    ]
    pixel = (0, min(max(rows[k_h // 2], 0), height - 1), min(max(cols[k_w // 2], 0), width - 1))
    terms, total = _terms_into(step, grad, pixel)
    return {
        "grad_output": g,
        "window_rows": rows,
        "window_cols": cols,
        "share": share_window,
        "pixel": {"channel": pixel[0], "y": pixel[1], "x": pixel[2]},
        "terms": terms[:MAX_CONTRIBUTIONS],
        "terms_count": len(terms),
        "terms_sum": total,
        "input_grad": float(grad.grad_input[0, pixel[0], pixel[1], pixel[2]]),
    }


def _terms_into(step: LayerTrace, grad: LayerGradient, pixel: tuple[int, int, int]) -> tuple[list[dict[str, Any]], float]:
    """Every ∂/∂z[o, i, j] · w[o, c, a, b] whose window tap (a, b) sits on input ``pixel`` (c, y, x), and their sum."""
    layer = conv_layer(step)
    c, y, x = pixel
    (k_h, k_w), (s_h, s_w), (d_h, d_w), (p_h, p_w) = layer.kernel_size, layer.stride, layer.dilation, layer.padding
    _, c_out, out_h, out_w = step.output.shape
    weight = layer.params["weight"]
    terms, total = [], 0.0
    for a in range(k_h):
        i, rest_i = divmod(y + p_h - a * d_h, s_h)
        if rest_i or not 0 <= i < out_h:
            continue
        for b in range(k_w):
            j, rest_j = divmod(x + p_w - b * d_w, s_w)
            if rest_j or not 0 <= j < out_w:
                continue
            for o in range(c_out):
                upstream, w = float(grad.grad_output[0, o, i, j]), float(weight[o, c, a, b])
                total += upstream * w
                terms.append({"o": o, "i": i, "j": j, "a": a, "b": b, "grad": upstream, "weight": w})
    return terms, total
