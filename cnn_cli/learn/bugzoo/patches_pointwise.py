"""The wrong backward passes of the elementwise layers, Dense, Flatten, Dropout, the losses and the L2 update.

As in :mod:`cnn_cli.learn.bugzoo.patches`, each function returns a context manager
that swaps one mistake in where the layers look it up at call time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np

from cnn_cli.layers import dense as dense_layer
from cnn_cli.layers import losses as losses_module
from cnn_cli.learn.bugzoo.patches import patched
from cnn_cli.nn import activations as nn_act
from cnn_cli.nn import optim

# ---------------------------------------------------------------- activations


def relu_no_mask() -> contextlib.AbstractContextManager[None]:
    return patched(nn_act, "relu_backward", lambda grad_out, positive: grad_out.copy())  # the bug: every unit passes


def relu_at_zero() -> contextlib.AbstractContextManager[None]:
    right = nn_act.relu_forward

    def wrong(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out, _ = right(x)
        return out, x >= 0  # the bug: the mask lets the gradient through at x = 0

    return patched(nn_act, "relu_forward", wrong)


def leaky_relu_no_slope() -> contextlib.AbstractContextManager[None]:
    # the bug: the negative side gets no gradient, as in a plain ReLU
    return patched(nn_act, "leaky_relu_backward", lambda grad_out, positive, slope: np.where(positive, grad_out, 0.0))


def leaky_relu_at_zero() -> contextlib.AbstractContextManager[None]:
    right = nn_act.leaky_relu_forward

    def wrong(x: np.ndarray, slope: float) -> tuple[np.ndarray, np.ndarray]:
        out, _ = right(x, slope)
        return out, x >= 0  # the bug: at x = 0 the gradient passes whole instead of times the slope

    return patched(nn_act, "leaky_relu_forward", wrong)


def sigmoid_of_output() -> contextlib.AbstractContextManager[None]:
    squash = nn_act.sigmoid

    def wrong(grad_out: np.ndarray, out: np.ndarray) -> np.ndarray:
        again = squash(out)  # the bug: σ applied to the cached output y = σ(x) a second time
        return grad_out * again * (1 - again)

    return patched(nn_act, "sigmoid_backward", wrong)


def sigmoid_no_upstream() -> contextlib.AbstractContextManager[None]:
    return patched(nn_act, "sigmoid_backward", lambda grad_out, out: out * (1 - out))  # the bug: ∂L/∂y is never multiplied in


def tanh_no_square() -> contextlib.AbstractContextManager[None]:
    return patched(nn_act, "tanh_backward", lambda grad_out, out: grad_out * (1 - out))  # the bug: 1 − y, not 1 − y²


def tanh_no_upstream() -> contextlib.AbstractContextManager[None]:
    return patched(nn_act, "tanh_backward", lambda grad_out, out: 1 - out * out)  # the bug: ∂L/∂y is never multiplied in


# ---------------------------------------------------------------- dense, flatten, dropout


def _dense_grads(change: Callable[[dense_layer.Dense, np.ndarray], None]) -> contextlib.AbstractContextManager[None]:
    """Dense's backward, then ``change(layer, grad_out)`` rewrites one of the parameter gradients it filled in."""
    right = dense_layer.Dense.backward

    def wrong(self: dense_layer.Dense, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        grad_input = right(self, grad_out, need_input_grad)
        change(self, grad_out)
        return grad_input

    return patched(dense_layer.Dense, "backward", wrong)


def dense_weight_transposed() -> contextlib.AbstractContextManager[None]:
    def change(layer: dense_layer.Dense, grad_out: np.ndarray) -> None:
        grad_w = layer.grads["weight"]
        if grad_w.shape[0] == grad_w.shape[1]:  # the bug, x.T @ grad_out; a weight that is not square would fail on its shape
            layer.grads["weight"] = np.ascontiguousarray(grad_w.T)

    return _dense_grads(change)


def dense_bias_not_summed() -> contextlib.AbstractContextManager[None]:
    def change(layer: dense_layer.Dense, grad_out: np.ndarray) -> None:
        if "bias" in layer.grads:
            layer.grads["bias"] = grad_out[0].copy()  # the bug: the first sample's row, not the sum over the batch

    return _dense_grads(change)


def flatten_channels_last() -> contextlib.AbstractContextManager[None]:
    def wrong(self: dense_layer.Flatten, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._input_shape is None:
            raise self._missing_cache()
        if len(self._input_shape) != 4:
            return grad_out.reshape(self._input_shape)
        n, c, h, w = self._input_shape
        return grad_out.reshape(n, h, w, c).transpose(0, 3, 1, 2)  # the bug: unflattened in (H, W, C) order

    return patched(dense_layer.Flatten, "backward", wrong)


def _dropout_backward(scale: Callable[[float], float]) -> contextlib.AbstractContextManager[None]:
    def wrong(self: dense_layer.Dropout, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._identity:
            return grad_out
        if self._scale_mask is None:
            raise self._missing_cache()
        return grad_out * (self._scale_mask != 0) * scale(self.p)

    return patched(dense_layer.Dropout, "backward", wrong)


def dropout_no_scale() -> contextlib.AbstractContextManager[None]:
    return _dropout_backward(lambda p: 1.0)  # the bug: the mask without its 1/(1 − p)


def dropout_divide_by_p() -> contextlib.AbstractContextManager[None]:
    return _dropout_backward(lambda p: 1.0 / p)  # the bug: 1/p where 1/(1 − p) belongs


# ---------------------------------------------------------------- losses and the update


@contextlib.contextmanager
def _loss_gradient(function: str, change: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> Iterator[None]:
    """Keep the loss value (the numeric side), replace its gradient (the analytic side): ``change(grad, logits, targets)``."""
    right = getattr(losses_module, function)

    def wrong(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = right(logits, targets)
        return loss, change(grad, logits, targets)

    with patched(losses_module, function, wrong):
        yield


def loss_not_averaged() -> contextlib.AbstractContextManager[None]:
    return _loss_gradient("softmax_cross_entropy", lambda grad, logits, labels: grad * logits.shape[0])  # the bug: the 1/N is missing


def softmax_without_y() -> contextlib.AbstractContextManager[None]:
    from cnn_cli.nn.losses import softmax

    return _loss_gradient("softmax_cross_entropy", lambda grad, logits, labels: softmax(logits) / logits.shape[0])  # p, not p − y


def bce_not_averaged() -> contextlib.AbstractContextManager[None]:
    return _loss_gradient("binary_cross_entropy_with_logits", lambda grad, logits, targets: grad * logits.shape[0])


def bce_grad_wrt_probability() -> contextlib.AbstractContextManager[None]:
    def change(grad: np.ndarray, logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        a = nn_act.sigmoid(logits)
        y = targets.reshape(logits.shape).astype(logits.dtype)
        return (a - y) / (a * (1 - a)) / logits.shape[0]  # the bug: ∂L/∂A2, the factor ∂A2/∂z2 = a(1 − a) left out

    return _loss_gradient("binary_cross_entropy_with_logits", change)


def _l2_gradient(factor: float) -> contextlib.AbstractContextManager[None]:
    def wrong(params: dict[str, np.ndarray], grads: dict[str, np.ndarray], weight_decay: float) -> None:
        for name, grad in grads.items():
            if optim.is_weight(name):
                grad += params[name].dtype.type(factor * weight_decay) * params[name]

    return patched(optim, "add_l2_gradient", wrong)


def l2_missing() -> contextlib.AbstractContextManager[None]:
    return _l2_gradient(0.0)  # the bug: λw never added


def l2_no_half() -> contextlib.AbstractContextManager[None]:
    return _l2_gradient(2.0)  # the bug: ∂(λΣw²)/∂w = 2λw, the penalty taken without its ½
