"""The layer interface: named parameters and gradients, forward, backward, shapes."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from cnn_cli.layers.options import Option

Shape = tuple[int, ...]  # one sample's shape, without the batch axis: (C, H, W) or (F,)


class Layer:
    """Base class. A layer keeps ``params`` and ``grads`` under the same names.

    ``forward`` keeps only what ``backward`` needs from the latest call (the
    cache); ``backward`` reads only that cache, fills ``grads`` and returns the
    gradient for the layer's input. The optimizer sees the dicts, never the layer.
    """

    type_name: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}

    def __init__(self, name: str) -> None:
        self.name = name
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = False
        self.keep_cache = True  # False: forward may drop what only backward needs
        self.input_shape: Shape = ()
        self.output_shape: Shape = ()

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """Compute the output for a batch; keep what backward needs."""
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:  # pragma: no cover
        """Given dL/d(output), fill ``grads`` and return dL/d(input) (or None if not needed)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The options this layer was built with (for summaries and checkpoints)."""
        return {}

    def flops(self) -> int:
        """Multiply-adds x2 of one forward pass for one sample (0 when negligible)."""
        return 0

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"{type(self).__name__}({self.name}{', ' if opts else ''}{opts})"
