"""Batch normalisation, forward and hand-written backward, the backward written twice (``cnn docs batchnorm``).

Per channel c, over the M values of a batch that share it (M = N for (N, F) input,
M = N·H·W for (N, C, H, W) input, where a channel is one feature map):

    μ = (1/M) Σ x               the batch mean
    x̄ = x − μ                   centred
    v = (1/M) Σ x̄²              the batch variance (biased: divided by M)
    σ = √(v + ε)                 the standard deviation
    x̂ = x̄ / σ                   normalised: mean 0, variance ≈ 1
    y = γ·x̂ + β                 scaled and shifted by the learned γ, β

In training the statistics are the batch's, so every output depends on every input
of its channel: the backward must carry the gradient through μ and v as well as
through x directly. :func:`batchnorm_backward_staged` does that one intermediate
at a time, in reverse order of the forward; :func:`batchnorm_backward` is the same
derivative summed up into one line,

    dx = (γ/σ)/M · (M·dy − Σdy − x̂·Σ(dy·x̂)).

Running statistics for evaluation follow PyTorch's ``nn.BatchNorm2d``: each training
forward updates them in place with ``momentum``, the mean with μ and the variance with
the *unbiased* batch variance v·M/(M − 1) (the forward itself normalises with the
biased v). In evaluation the forward uses the running statistics, which are constants,
so the backward is dx = dy·γ/σ and couples nothing.

The math works on (M, C) rows (one column per channel): :func:`channel_rows` turns
(N, F) or (N, C, H, W) into rows and :func:`from_channel_rows` turns them back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BatchNormCache:
    """What both backwards read, all (M, C) or (C,) in the rows layout; ``batch_stats`` False in evaluation."""

    centred: np.ndarray  # x̄ = x − μ, (M, C)
    std: np.ndarray  # σ = √(v + ε), (C,)
    x_hat: np.ndarray  # x̂ = x̄ / σ, (M, C)
    gamma: np.ndarray  # γ, (C,) (ones without affine)
    batch_stats: bool  # True: μ and v came from this batch (training), so dx flows through them too


def channel_rows(x: np.ndarray) -> np.ndarray:
    """(N, F) -> (N, F) unchanged; (N, C, H, W) -> (N·H·W, C): one row per value sharing the statistics."""
    if x.ndim == 2:
        return x
    if x.ndim == 4:
        return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])
    raise ValueError(f"batch norm needs (N, F) or (N, C, H, W) input, got shape {x.shape}")


def from_channel_rows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`channel_rows` for an input of ``shape``."""
    if len(shape) == 2:
        return rows
    n, c, h, w = shape
    return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def batchnorm_forward(
    x: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, BatchNormCache]:
    """y = γ·(x − μ)/√(v + ε) + β per channel. Returns (y, cache).

    x (N, F) or (N, C, H, W) -> y of the same shape; gamma, beta, running_mean and
    running_var (C,) (gamma/beta None: no affine, γ = 1 and β = 0). ``training``: μ, v
    from the batch and the running statistics updated in place; else the running ones.
    """
    rows = channel_rows(x)
    if training:
        count = rows.shape[0]
        if count < 2:
            raise ValueError(f"batch norm in training needs more than 1 value per channel, got input of shape {x.shape}")
        mean = rows.mean(axis=0)
        centred = rows - mean
        var = (centred * centred).mean(axis=0)
        running_mean *= 1.0 - momentum
        running_mean += momentum * mean
        running_var *= 1.0 - momentum
        running_var += momentum * var * (count / (count - 1))  # unbiased, as PyTorch keeps it
    else:
        centred = rows - running_mean
        var = running_var
    std = np.sqrt(var + eps)
    x_hat = centred / std
    gamma = np.ones_like(std) if gamma is None else gamma
    out = x_hat * gamma
    if beta is not None:
        out += beta
    return from_channel_rows(out, x.shape), BatchNormCache(centred, std, x_hat, gamma, batch_stats=training)


def batchnorm_param_grads(grad_out: np.ndarray, cache: BatchNormCache) -> tuple[np.ndarray, np.ndarray]:
    """(dγ, dβ), each (C,): dβ = Σ dy and dγ = Σ dy·x̂ over the M rows of each channel."""
    dy = channel_rows(grad_out)
    return (dy * cache.x_hat).sum(axis=0), dy.sum(axis=0)


def batchnorm_backward_staged(grad_out: np.ndarray, cache: BatchNormCache) -> np.ndarray:
    """dL/dx by the chain rule, one forward intermediate at a time, last first.

    grad_out (N, F) or (N, C, H, W) -> dL/dx of the same shape. Each line is the local
    derivative of one forward line; a value used twice (x̄ feeds both x̂ and v) gets the
    sum of its two gradients.
    """
    dy = channel_rows(grad_out)
    count = dy.shape[0]
    d_x_hat = dy * cache.gamma  # y = γ·x̂ + β
    if not cache.batch_stats:  # μ and σ are the running constants: x̂ = (x − μ)/σ is linear in x
        return from_channel_rows(d_x_hat / cache.std, grad_out.shape)
    d_centred_direct = d_x_hat / cache.std  # x̂ = x̄ · (1/σ), through x̄
    d_inv_std = (d_x_hat * cache.centred).sum(axis=0)  # ... and through 1/σ, shared by the whole channel
    d_std = -d_inv_std / cache.std**2  # d(1/σ)/dσ = −1/σ²
    d_var = d_std / (2.0 * cache.std)  # σ = √(v + ε): dσ/dv = 1/(2σ)
    d_centred_var = d_var * 2.0 * cache.centred / count  # v = (1/M) Σ x̄²: dv/dx̄ = 2x̄/M
    d_centred = d_centred_direct + d_centred_var  # x̄ reaches the loss along both paths
    d_mean = -d_centred.sum(axis=0)  # x̄ = x − μ: dx̄/dμ = −1 for every row
    d_x = d_centred + d_mean / count  # μ = (1/M) Σ x: dμ/dx = 1/M
    return from_channel_rows(d_x, grad_out.shape)


def batchnorm_backward(grad_out: np.ndarray, cache: BatchNormCache) -> np.ndarray:
    """dL/dx = (γ/σ)/M · (M·dy − Σdy − x̂·Σ(dy·x̂)), the staged chain rule summed up.

    grad_out (N, F) or (N, C, H, W) -> dL/dx of the same shape. The Σdy term is the
    path through the mean, the x̂·Σ(dy·x̂) term the path through the variance.
    """
    dy = channel_rows(grad_out)
    scale = cache.gamma / cache.std
    if not cache.batch_stats:
        return from_channel_rows(dy * scale, grad_out.shape)
    count = dy.shape[0]
    d_x = (scale / count) * (count * dy - dy.sum(axis=0) - cache.x_hat * (dy * cache.x_hat).sum(axis=0))
    return from_channel_rows(d_x, grad_out.shape)
