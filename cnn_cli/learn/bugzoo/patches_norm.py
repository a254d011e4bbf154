"""The wrong passes of batch norm and global average pooling, as context managers like those of :mod:`.patches`.

Each is swapped in where the layers look the math up at call time (the module globals
of :mod:`cnn_cli.layers.batchnorm` and :mod:`cnn_cli.layers.pool`), so a model built from
``cnn_cli.layers`` and the exercise checker's calls into those layers both run it.
"""

from __future__ import annotations

import contextlib

import numpy as np

from cnn_cli.layers import batchnorm as batchnorm_layer
from cnn_cli.layers import pool as pool_layer
from cnn_cli.learn.bugzoo.patches import patched
from cnn_cli.nn.batchnorm import BatchNormCache, channel_rows, from_channel_rows


def _without(term: str):
    """The one-line batch-norm backward with the path through the mean (``mean``) or the variance (``variance``) left out."""

    def wrong(grad_out: np.ndarray, cache: BatchNormCache) -> np.ndarray:
        dy = channel_rows(grad_out)
        count = dy.shape[0]
        if not cache.batch_stats:
            return from_channel_rows(dy * (cache.gamma / cache.std), grad_out.shape)
        through_mean = dy.sum(axis=0) if term != "mean" else 0.0
        through_variance = cache.x_hat * (dy * cache.x_hat).sum(axis=0) if term != "variance" else 0.0
        d_x = (cache.gamma / cache.std / count) * (count * dy - through_mean - through_variance)
        return from_channel_rows(d_x, grad_out.shape)

    return wrong


def bn_no_mean_term() -> contextlib.AbstractContextManager[None]:
    return patched(batchnorm_layer, "batchnorm_backward", _without("mean"))


def bn_no_variance_term() -> contextlib.AbstractContextManager[None]:
    return patched(batchnorm_layer, "batchnorm_backward", _without("variance"))


def bn_running_stats_in_training() -> contextlib.AbstractContextManager[None]:
    """A training forward that normalises with the running statistics; its backward still goes through μ and v."""
    right = batchnorm_layer.batchnorm_forward

    def wrong(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
        out, cache = right(x, gamma, beta, running_mean, running_var, False, momentum, eps)  # the bug: training ignored
        cache.batch_stats = training  # the backward still takes μ and v for the batch's
        return out, cache

    return patched(batchnorm_layer, "batchnorm_forward", wrong)


def gap_no_divide() -> contextlib.AbstractContextManager[None]:
    def wrong(grad_out: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
        n, c = grad_out.shape
        return np.broadcast_to(grad_out[:, :, None, None], (n, c, *input_hw)).copy()  # the bug: no / (H·W)

    return patched(pool_layer, "global_avgpool_backward", wrong)
