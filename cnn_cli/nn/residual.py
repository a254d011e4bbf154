"""The residual connection's arithmetic (He et al. 2016; ``cnn docs residual``).

A residual block computes ``out = F(x) + S(x)``: F is the block's inner layers, S the skip
(the identity, or a 1x1 convolution when the shapes differ). ``x`` is used twice, so in the
backward it receives two gradients, and the chain rule adds them (a value that feeds two
places gets the sum of the gradients coming back from both)::

    dL/dx = dL/dout · dF/dx  +  dL/dout · dS/dx
            (through the layers)  (along the skip: dL/dout itself when S is the identity)

The second term is why deep residual nets train: even where dF/dx has shrunk to almost
nothing, dL/dout reaches x undiminished along the skip.
"""

from __future__ import annotations

import numpy as np


def residual_add(through_layers: np.ndarray, along_skip: np.ndarray) -> np.ndarray:
    """out = F(x) + S(x): (N, *shape) and (N, *shape) -> (N, *shape). The add passes dL/dout unchanged to both terms."""
    return through_layers + along_skip


def fork_backward(grad_through_layers: np.ndarray, grad_along_skip: np.ndarray) -> np.ndarray:
    """dL/dx of a value used twice: the sum of its two gradients, (N, *input_shape) each -> (N, *input_shape).

    ``grad_through_layers`` is dL/dout carried back through the inner layers (dL/dout · dF/dx);
    ``grad_along_skip`` is dL/dout carried back along the skip (dL/dout · dS/dx).
    """
    return grad_through_layers + grad_along_skip
