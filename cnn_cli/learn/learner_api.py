"""The functions a learner's file may define: one table shared by the exercises, ``gradcheck --impl`` and ``train --impl``.

CS231n-style pairs: ``NAME_forward(...)`` returns ``(out, cache)`` in whatever cache
format the learner likes, and ``NAME_backward(grad_out, cache)`` reads only that
cache. The losses are one function returning ``(loss, grad_logits)``, as
:mod:`cnn_cli.nn.losses` does. Shapes follow cnn (and PyTorch): activations
``(N, C, H, W)``, conv weights ``(C_out, C_in/groups, kH, kW)``, dense weights
``(F_out, F_in)``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LearnerFunction:
    """One operation a learner can write: its call signatures and the layer (or loss) it replaces in a model."""

    name: str  # the exercise name and the prefix of the functions
    forward: str  # the forward signature; for a loss, the one function's signature
    backward: str  # the backward signature ("" for a loss, whose one function returns the gradient)
    replaces: str  # the config's layer type or loss name, or "" when nothing in a model uses it
    guide: str  # the ``cnn docs`` topic with the derivation


LEARNER_FUNCTIONS: tuple[LearnerFunction, ...] = (
    LearnerFunction(
        "conv2d",
        "conv2d_forward(x, w, b, stride=1, pad=0, dilation=1, groups=1) -> (out, cache)",
        "conv2d_backward(grad_out, cache) -> (dx, dw, db)",
        "conv2d",
        "conv2d",
    ),
    LearnerFunction(
        "maxpool2d",
        "maxpool2d_forward(x, size=2, stride=2, pad=0) -> (out, cache)",
        "maxpool2d_backward(grad_out, cache) -> dx",
        "maxpool2d",
        "maxpool2d",
    ),
    LearnerFunction(
        "avgpool2d",
        "avgpool2d_forward(x, size=2, stride=2, pad=0) -> (out, cache)",
        "avgpool2d_backward(grad_out, cache) -> dx",
        "avgpool2d",
        "avgpool2d",
    ),
    LearnerFunction("relu", "relu_forward(x) -> (out, cache)", "relu_backward(grad_out, cache) -> dx", "relu", "relu"),
    LearnerFunction(
        "leaky_relu",
        "leaky_relu_forward(x, slope=0.01) -> (out, cache)",
        "leaky_relu_backward(grad_out, cache) -> dx",
        "leaky_relu",
        "leaky_relu",
    ),
    LearnerFunction("sigmoid", "sigmoid_forward(x) -> (out, cache)", "sigmoid_backward(grad_out, cache) -> dx", "sigmoid", "sigmoid"),
    LearnerFunction("tanh", "tanh_forward(x) -> (out, cache)", "tanh_backward(grad_out, cache) -> dx", "tanh", "tanh"),
    LearnerFunction("dense", "dense_forward(x, w, b) -> (out, cache)", "dense_backward(grad_out, cache) -> (dx, dw, db)", "dense", "dense"),
    LearnerFunction("flatten", "flatten_forward(x) -> (out, cache)", "flatten_backward(grad_out, cache) -> dx", "flatten", "flatten"),
    LearnerFunction(
        "dropout", "dropout_forward(x, keep, p) -> (out, cache)", "dropout_backward(grad_out, cache) -> dx", "dropout", "dropout"
    ),
    LearnerFunction(
        "softmax_cross_entropy",
        "softmax_cross_entropy(logits, labels) -> (loss, grad_logits)",
        "",
        "softmax_cross_entropy",
        "softmax_cross_entropy",
    ),
    LearnerFunction(
        "binary_cross_entropy",
        "binary_cross_entropy(logits, targets) -> (loss, grad_logits)",
        "",
        "binary_cross_entropy",
        "binary_cross_entropy",
    ),
    LearnerFunction(
        "batchnorm",
        "batchnorm_forward(x, gamma, beta, eps=1e-5) -> (out, cache)",
        "batchnorm_backward(grad_out, cache) -> (dx, dgamma, dbeta)",
        "",
        "batchnorm",
    ),
    LearnerFunction(
        "global_avg_pool",
        "global_avg_pool_forward(x) -> (out, cache)",
        "global_avg_pool_backward(grad_out, cache) -> dx",
        "",
        "global_avg_pool",
    ),
    LearnerFunction("l2_update", "l2_update(w, grad_w, lr, weight_decay) -> new_w", "", "", "l2"),
    LearnerFunction(
        "residual",
        "residual_forward(x, w1, b1, w2, b2) -> (out, cache)",
        "residual_backward(grad_out, cache) -> (dx, dw1, db1, dw2, db2)",
        "",
        "residual",
    ),
)

BY_NAME = {f.name: f for f in LEARNER_FUNCTIONS}
