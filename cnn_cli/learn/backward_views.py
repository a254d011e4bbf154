"""The backward pass of one input, layer by layer, as plain arrays (no plotting here).

``cnn viz CKPT IMAGE --backward`` draws these (:mod:`cnn_cli.pictures.backward`). Every
array is computed by the library's own backward functions, the ones training
uses, so a picture shows what the hand-written backward really does:

- :func:`backward_views`: a forward pass that keeps every layer's input and
  output (:meth:`Model.trace`), then a backward pass from the score gradient
  of one class (:meth:`Loss.class_score_gradient`, a one-hot dScore/dlogits)
  that keeps dScore/d(output) and dScore/d(input) of every layer
  (:meth:`Model.backward_trace`). The last step's dScore/d(input) is the
  saliency map.
- :func:`relu_mask`: which units of a ReLU let the gradient through (notes 000
  §2.8, ``cnn docs relu``: dL/dx = dL/dy where x > 0, else 0), read off the ReLU's backward.
- :func:`maxpool_winners`: how many windows each input of a max-pool won
  (notes 000 §2.7, ``cnn docs maxpool2d``: the gradient of a window goes to its
  maximum only), read off the max-pool's backward.
- :func:`col2im_overlap`: how many windows of a convolution read each input
  pixel. col2im adds each window's gradient back onto the pixels it read
  (notes 000 §2.5, ``cnn docs conv2d``, ``+=``), so a pixel read by 4 windows collects 4 terms and
  one read by 1 window collects 1. With kernel 3 and stride 2 the counts
  alternate 1, 2, 1, 2 along each axis: the checkerboard of a saliency map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnn_cli.layers import Layer
from cnn_cli.model.network import LayerGradient, LayerTrace, Model
from cnn_cli.nn.conv import conv2d_backward, conv2d_forward


@dataclass
class BackwardView:
    """One input's forward and backward pass, every layer kept.

    ``forward[i]`` and ``backward[i]`` belong to ``model.layers[i]`` (input side
    first). Arrays are for the one sample: ``forward[i].input`` is (1, *input_shape),
    ``backward[i].grad_output`` is dScore/d(layer output), (1, *output_shape).
    """

    class_index: int
    logits: np.ndarray  # (1, *output_shape)
    forward: list[LayerTrace]
    backward: list[LayerGradient]

    @property
    def saliency(self) -> np.ndarray:
        """dScore/d(input pixels) (C, H, W): the first layer's input gradient."""
        return self.backward[0].grad_input[0]


def backward_views(model: Model, x: np.ndarray, class_index: int | None = None) -> BackwardView:
    """Forward one input in evaluation mode, then backpropagate the score of one class.

    Args:
        model: a built model. Its ``grads`` are overwritten; its parameters are not touched.
        x: one input (1, *model.input_shape), normalised like the training data.
        class_index: the class whose score (logit) to backpropagate; None takes the predicted class.
    Raises:
        ValueError: x has the wrong shape, or class_index is out of range.
    """
    expected = (1, *model.input_shape)
    if tuple(x.shape) != expected:
        raise ValueError(f"expected one input of shape {expected}, got {tuple(x.shape)}")
    forward = model.trace(x, training=False)
    logits = forward[-1].output
    if class_index is None:
        class_index = int(model.loss.predict(logits)[0])
    if not 0 <= class_index < model.loss.num_classes:
        raise ValueError(f"class_index must be in 0..{model.loss.num_classes - 1}, got {class_index}")
    backward = model.backward_trace(model.loss.class_score_gradient(logits, class_index))
    return BackwardView(class_index, logits, forward, backward)


def relu_mask(layer: Layer, grad_shape: tuple[int, ...]) -> np.ndarray:
    """Which units of a ReLU pass gradient, after its forward: ReLU backward of all-ones, as bools.

    Args:
        layer: a ``relu`` layer that has just run forward (it keeps its mask).
        grad_shape: the shape of its output, (N, ...).
    Returns:
        (N, ...) bool: True where dL/dx = dL/dy, False where the gradient is cut.
    """
    if layer.type_name != "relu":
        raise ValueError(f"{layer.name}: expected a relu layer, got {layer.type_name}")
    passed = layer.backward(np.ones(grad_shape), need_input_grad=True)
    return np.asarray(passed) != 0


def maxpool_winners(layer: Layer, output_shape: tuple[int, ...]) -> np.ndarray:
    """How many windows each input of a max-pool won, after its forward: its backward of all-ones.

    Args:
        layer: a ``maxpool2d`` layer that has just run forward (it keeps its winners).
        output_shape: the shape of its output, (N, C, H_out, W_out).
    Returns:
        (N, C, H, W) int: 0 for an input that won no window (it gets no gradient),
        1 for the maximum of one window, more where overlapping windows share a maximum.
    """
    if layer.type_name != "maxpool2d":
        raise ValueError(f"{layer.name}: expected a maxpool2d layer, got {layer.type_name}")
    routed = layer.backward(np.ones(output_shape), need_input_grad=True)
    return np.rint(np.asarray(routed)).astype(np.int64)


def col2im_overlap(
    input_hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """How many windows of a convolution read each input pixel: col2im of all-ones.

    A one-channel convolution with an all-ones kernel, run forward on an all-ones
    input and backward from an all-ones output gradient: every window then sends
    1 to each pixel it read, and col2im's ``+=`` counts them.

    Returns:
        (H, W) int counts (0 for a pixel no window reads, e.g. the last row when the
        stride does not fit the input).
    """
    ones = np.ones((1, 1, *input_hw))
    out, cache = conv2d_forward(ones, np.ones((1, 1, *kernel)), None, stride, padding, dilation)
    grad_input, _, _ = conv2d_backward(np.ones_like(out), cache, need_input_grad=True)
    if grad_input is None:  # pragma: no cover - asked for
        raise RuntimeError("conv2d_backward returned no input gradient")
    return np.rint(grad_input[0, 0]).astype(np.int64)


def layer_overlap(layer: Layer) -> np.ndarray:
    """:func:`col2im_overlap` for a conv2d layer's own geometry, on its input (H, W)."""
    if layer.type_name != "conv2d":
        raise ValueError(f"{layer.name}: expected a conv2d layer, got {layer.type_name}")
    _, h, w = layer.input_shape
    return col2im_overlap((h, w), layer.kernel_size, layer.stride, layer.padding, layer.dilation)  # type: ignore[attr-defined]
