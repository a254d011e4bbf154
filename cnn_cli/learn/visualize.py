"""What a trained network computes for one input, as plain arrays (no plotting here).

- :func:`feature_maps`: the output of every conv layer for one image.
- :func:`saliency`: the gradient of one class score with respect to the input
  pixels, computed by the model's own hand-written backward pass. This is notes
  000 §2.5's dLoss/dinput, with the loss replaced by the class score: start the
  backward pass from a one-hot ``dScore/dlogits`` instead of ``dLoss/dlogits``
  and every layer's backward carries it down to the pixels unchanged in form.
- :func:`confident_mistakes`: which wrong predictions the model was surest of.

:mod:`cnn_cli.pictures.filters` draws these (``cnn viz``, through :mod:`cnn_cli.pictures.viz`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_cli.layers import Conv2D
from cnn_cli.layers.base import Layer
from cnn_cli.layers.residual import Residual
from cnn_cli.model.network import Model


def _check_single_input(model: Model, x: np.ndarray) -> np.ndarray:
    expected = (1, *model.input_shape)
    if tuple(x.shape) != expected:
        raise ValueError(f"expected one input of shape {expected}, got {tuple(x.shape)}")
    return x.astype(model.dtype, copy=False)


def feature_maps(model: Model, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The output of every conv layer (before its activation) for one input, in evaluation mode.

    The convolutions inside a residual block are included, under their model names
    (``res1.conv1``, and ``res1.proj`` for a projected skip), after the layers before the block.

    Args:
        model: a built model.
        x: one input, (1, C, H, W), normalised like the training data.
    Returns:
        ``[(layer name, (C_out, H_out, W_out) output), ...]`` in layer order.
    """
    return _conv_outputs(model.layers, _check_single_input(model, x))


def _conv_outputs(layers: list[Layer[Any]], x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Run ``layers`` on ``x`` in evaluation mode, keeping every conv layer's output, blocks' inner layers included."""
    found: list[tuple[str, np.ndarray]] = []
    for layer in layers:
        layer.training = False
        if isinstance(layer, Residual):  # the inner layers run again in the block's forward: cheap for one image
            found += _conv_outputs(layer.inner, x)
            if layer.projection is not None:  # the skip's 1x1 convolution, on the block's input
                found += _conv_outputs([layer.projection], x)
        out = layer.forward(x)
        if isinstance(layer, Conv2D):
            found.append((layer.name, out[0].copy()))
        x = out
    return found


def class_score_gradient(model: Model, logits: np.ndarray, class_index: int) -> np.ndarray:
    """d(score of ``class_index``)/d(logits) for one sample's (1, ...) logits (see :meth:`Loss.class_score_gradient`)."""
    return model.loss.class_score_gradient(logits, class_index)


def saliency(model: Model, x: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, int]:
    """Gradient of a class score (the logit, before softmax) with respect to the input pixels.

    A forward pass in evaluation mode, then the model's backward pass from the
    one-hot score gradient (:func:`class_score_gradient`) down to the input,
    ``model.backward_trace(grad)``. Large |gradient| marks pixels
    whose change would move the score most (Simonyan et al., 2014). The backward
    pass overwrites the model's ``grads``; the parameters are untouched.

    Args:
        model: a built model.
        x: one input, (1, C, H, W), normalised like the training data.
        class_index: the class whose score to explain (0..num_classes-1); None
            takes the predicted class.
    Returns:
        ``(gradient, class_index)``: gradient (H, W) is dScore/dx for a
        one-channel input; for C channels it is the sum over channels (the
        gradient for brightening a pixel in every channel at once).
    """
    x = _check_single_input(model, x)
    logits = model.forward(x, training=False)
    if class_index is None:
        class_index = int(model.loss.predict(logits)[0])
    if not 0 <= class_index < model.loss.num_classes:
        raise ValueError(f"class_index must be in 0..{model.loss.num_classes - 1}, got {class_index}")
    grad_input = model.backward_trace(class_score_gradient(model, logits, class_index))[0].grad_input
    return grad_input[0].sum(axis=0), class_index


def confident_mistakes(probabilities: np.ndarray, predicted: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of the wrongly predicted samples, most confident first (at most ``count``).

    Args:
        probabilities: (N, num_classes) class probabilities.
        predicted: (N,) predicted classes (``model.loss.predict``).
        labels: (N,) true classes.
    Returns:
        (M,) int indices, M ≤ count, sorted by the probability given to the wrong
        predicted class, highest first (ties keep data order).
    """
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count]
