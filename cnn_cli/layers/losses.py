"""The model's loss, one class per loss, in a registry like the layers'.

Each class knows its value and gradient on the logits (the math is in
:mod:`cnn_cli.nn.losses`), how to read class probabilities and predictions from
the logits, the gradient of one class's score, and how many classes its outputs
stand for. Nothing outside this module branches on a loss name::

    loss = Loss("softmax_cross_entropy", num_outputs=10)   # the registered class
    value, grad_logits = loss(logits, labels)
    loss.predict(logits), loss.probabilities(logits)
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cnn_cli.nn.activations import sigmoid
from cnn_cli.nn.losses import binary_cross_entropy_with_logits, softmax, softmax_cross_entropy, sum_squared_error


class Loss:
    """A loss on the model's logits, mean over the batch, plus how to read classes from them.

    ``Loss(name, num_outputs)`` returns an instance of the class registered under
    ``name`` in :data:`LOSSES`. Logits may have any shape (N, ...); they are read as
    (N, num_outputs).
    """

    name: ClassVar[str] = ""

    def __new__(cls, name: str, num_outputs: int) -> Loss:
        if cls is Loss:
            if name not in LOSSES:
                raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
            cls = LOSSES[name]
        return super().__new__(cls)

    def __init__(self, name: str, num_outputs: int) -> None:
        self.num_outputs = num_outputs

    def __getnewargs__(self) -> tuple[str, int]:  # copy and pickle rebuild through __new__
        return self.name, self.num_outputs

    @classmethod
    def output_problem(cls, output_shape: tuple[int, ...]) -> str | None:
        """Why a model with this per-sample output shape cannot use the loss, or None when it can."""
        return None

    @property
    def num_classes(self) -> int:
        """How many classes the outputs stand for."""
        return self.num_outputs

    def value_and_gradient(self, flat: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:  # pragma: no cover
        """(loss, dLoss/dlogits) for (N, num_outputs) logits and integer labels (N,)."""
        raise NotImplementedError

    def __call__(self, logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """(loss, dLoss/dlogits) for logits of any shape (N, ...) and integer labels (N,); the gradient has the logits' shape."""
        loss, grad = self.value_and_gradient(logits.reshape(logits.shape[0], -1), labels)
        return loss, grad.reshape(logits.shape)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """(N, ...) logits -> (N, num_classes) class probabilities: the softmax of the outputs."""
        return softmax(logits.reshape(logits.shape[0], -1))

    def predict(self, logits: np.ndarray) -> np.ndarray:
        """(N, ...) logits -> (N,) predicted class indices (int64): the largest output."""
        return logits.reshape(logits.shape[0], -1).argmax(axis=1)

    def class_score_gradient(self, logits: np.ndarray, class_index: int) -> np.ndarray:
        """d(score of ``class_index``)/d(logits) for (N, ...) logits, same shape.

        The score of class k is its logit ``z_k``: the gradient is 1 at k and 0 elsewhere.
        """
        grad = np.zeros_like(logits).reshape(logits.shape[0], -1)
        grad[:, class_index] = 1.0
        return grad.reshape(logits.shape)


class SoftmaxCrossEntropy(Loss):
    """−log softmax(z)[label], one output per class (notes 000 §2.9, ``cnn docs softmax_cross_entropy``: the gradient is p − y)."""

    name = "softmax_cross_entropy"

    def value_and_gradient(self, flat: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        return softmax_cross_entropy(flat, labels)


class SumSquaredError(Loss):
    """Notes 001's sum of squared errors between the outputs and the one-hot label, one output per class (``cnn docs sse``)."""

    name = "sum_squared_error"

    def value_and_gradient(self, flat: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        return sum_squared_error(flat, np.eye(flat.shape[1], dtype=flat.dtype)[labels])


class BinaryCrossEntropy(Loss):
    """Two classes from a single output z, the logit of class 1: p(1) = σ(z) (notes 003/004, ``cnn docs bce``)."""

    name = "binary_cross_entropy"

    @classmethod
    def output_problem(cls, output_shape: tuple[int, ...]) -> str | None:
        if int(np.prod(output_shape)) != 1:
            return f"{cls.name} needs one output, the last layer gives {output_shape}"
        return None

    @property
    def num_classes(self) -> int:
        return 2

    def value_and_gradient(self, flat: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        return binary_cross_entropy_with_logits(flat, labels)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        p1 = sigmoid(logits.reshape(logits.shape[0], -1)[:, 0])
        return np.stack([1 - p1, p1], axis=1)

    def predict(self, logits: np.ndarray) -> np.ndarray:
        return (logits.reshape(logits.shape[0], -1)[:, 0] > 0).astype(np.int64)

    def class_score_gradient(self, logits: np.ndarray, class_index: int) -> np.ndarray:
        """Class 1's score is z and class 0's is −z (its log-odds), so the gradient is +1 or −1."""
        grad = np.zeros_like(logits).reshape(logits.shape[0], -1)
        grad[:, 0] = 1.0 if class_index == 1 else -1.0
        return grad.reshape(logits.shape)


LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (SoftmaxCrossEntropy, BinaryCrossEntropy, SumSquaredError)}
