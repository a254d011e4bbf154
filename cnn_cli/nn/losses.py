"""Losses on logits, averaged over the batch, each returning (loss, dLoss/dlogits).

Notes 000 §2.9, 001 and 002 derive the softmax cross-entropy gradient
p − y (p = softmax(logits), y = one-hot target); dividing by N is the mean
(``cnn docs softmax_cross_entropy``).

Notes 003/004 use binary cross-entropy after a sigmoid; fused on the logit the
chain (A − Y)/(A(1 − A)) · A(1 − A) collapses to σ(z) − y (notes 004, dL/dz2;
``cnn docs binary_cross_entropy``).

Notes 001 compares networks by the sum of squared errors (SSE, ``cnn docs sum_squared_error``).
"""

from __future__ import annotations

import numpy as np

from cnn_cli.nn.activations import sigmoid


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log p for each row of (N, K) logits, computed after subtracting the row max.

    log p_k = (z_k − m) − log Σ_j e^(z_j − m): every exponent is ≤ 0, so nothing
    overflows, and no log of a rounded-to-zero probability is ever taken.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits (stable, via :func:`log_softmax`)."""
    return np.exp(log_softmax(logits))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over the batch of −log p[label].

    Args:
        logits: (N, K).
        labels: (N,) integers in [0, K).
    Returns:
        (loss, grad) with grad (N, K) = (p − onehot(labels)) / N.
    """
    n = logits.shape[0]
    log_p = log_softmax(logits)
    rows = np.arange(n)
    loss = -float(log_p[rows, labels].mean())
    grad = np.exp(log_p)
    grad[rows, labels] -= 1.0  # p_k − 1 for the target class, p_i elsewhere (notes 000 §2.9)
    grad /= n
    return loss, grad


def binary_cross_entropy_with_logits(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over the batch of −[y log σ(z) + (1 − y) log(1 − σ(z))], on the logit z.

    Stable form: max(z, 0) − z·y + log1p(e^(−|z|)), equal to the above for every z.

    Args:
        logits: (N, 1) or (N,), one logit per sample.
        targets: (N,) in {0, 1} (or probabilities in [0, 1]).
    Returns:
        (loss, grad) with grad shaped like logits, = (σ(z) − y) / N.
    """
    z = logits.reshape(-1)
    n = z.shape[0]
    y = targets.reshape(-1).astype(z.dtype)
    per_sample = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    grad = (sigmoid(z) - y) / n
    return float(per_sample.mean()), grad.reshape(logits.shape)


def sum_squared_error(outputs: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Notes 001's SSE per sample, averaged over the batch: (1/N) Σ_n Σ_k (o_nk − t_nk)² (``cnn docs sse``).

    Args:
        outputs: (N, K).
        targets: (N, K), e.g. one-hot labels.
    Returns:
        (loss, grad) with grad (N, K) = 2 (o − t) / N.
    """
    n = outputs.shape[0]
    diff = outputs - targets.astype(outputs.dtype)
    return float((diff * diff).sum() / n), 2.0 * diff / n
