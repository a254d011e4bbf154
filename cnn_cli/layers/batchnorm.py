"""BatchNorm2D (after a convolution) and BatchNorm1D (after a dense layer) (``cnn docs batchnorm``).

params: ``weight`` γ and ``bias`` β, (C,) each, when ``affine`` (PyTorch's names).
buffers: ``running_mean`` and ``running_var``, (C,) each: not trained, but part of the
model (checkpoints keep them, evaluation uses them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Self

import numpy as np

from cnn_cli.layers.base import BuildContext, Layer, LayerSpec, Shape, elements
from cnn_cli.nn.batchnorm import BatchNormCache, batchnorm_backward, batchnorm_forward, batchnorm_param_grads
from cnn_cli.nn.shapes import GeometryError
from cnn_cli.schema.markers import Range

Eps = Annotated[float, Range(above=0.0)]
Momentum = Annotated[float, Range(minimum=0.0, maximum=1.0)]


@dataclass(frozen=True, kw_only=True)
class BatchNormSpec(LayerSpec):
    """Options of a batch-norm layer: eps (added to the variance), momentum (of the running statistics), affine (γ, β)."""

    name_prefix = "bn"
    eps: Eps = 1e-5
    momentum: Momentum = 0.1
    affine: bool = True

    def num_params(self, input_shape: Shape) -> int:
        return 2 * input_shape[0] if self.affine else 0

    def workspace(self, input_shape: Shape) -> int:
        """The cache keeps x̄ and x̂, each as large as the input."""
        return 2 * elements(input_shape)


@dataclass(frozen=True, kw_only=True)
class BatchNorm2DSpec(BatchNormSpec):
    """Options of a ``batchnorm2d`` layer: statistics per channel over (N, H, W)."""

    type: str = "batchnorm2d"

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise GeometryError(
                f"needs (C, H, W) feature maps (after a conv2d), got shape {input_shape}; batchnorm1d normalises (F,) features"
            )
        return input_shape


@dataclass(frozen=True, kw_only=True)
class BatchNorm1DSpec(BatchNormSpec):
    """Options of a ``batchnorm1d`` layer: statistics per feature over N."""

    type: str = "batchnorm1d"

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise GeometryError(
                f"needs (F,) features (after a dense or global_avg_pool), got shape {input_shape}; batchnorm2d normalises feature maps"
            )
        return input_shape


class _BatchNorm(Layer[BatchNormSpec]):
    """y = γ·(x − μ)/√(v + ε) + β per channel; batch statistics in training, running ones in evaluation."""

    def __init__(
        self, name: str, channels: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True, dtype: Any = np.float32
    ) -> None:
        super().__init__(name)
        self.channels, self.eps, self.momentum = channels, eps, momentum
        if affine:
            self.params["weight"] = np.ones(channels, dtype=dtype)
            self.params["bias"] = np.zeros(channels, dtype=dtype)
        self.buffers["running_mean"] = np.zeros(channels, dtype=dtype)
        self.buffers["running_var"] = np.ones(channels, dtype=dtype)
        self._cache: BatchNormCache | None = None

    @classmethod
    def build(cls, spec: BatchNormSpec, input_shape: Shape, ctx: BuildContext) -> Self:
        layer = cls(spec.name or cls.type_name, input_shape[0], spec.eps, spec.momentum, spec.affine, ctx.dtype)
        return layer._placed(input_shape, spec)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) or (N, F) -> the same shape; in training, updates the running statistics in place."""
        out, cache = batchnorm_forward(
            x,
            self.params.get("weight"),
            self.params.get("bias"),
            self.buffers["running_mean"],
            self.buffers["running_var"],
            self.training,
            self.momentum,
            self.eps,
        )
        self._cache = cache if self.keep_cache else None
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """dL/dy -> dL/dx of the same shape; fills grads['weight'] (dγ) and grads['bias'] (dβ) when affine."""
        if self._cache is None:
            raise self._missing_cache()
        if self.params:
            self.grads["weight"], self.grads["bias"] = batchnorm_param_grads(grad_out, self._cache)
        return batchnorm_backward(grad_out, self._cache) if need_input_grad else None

    def config(self) -> dict[str, Any]:
        return {"channels": self.channels, "eps": self.eps, "momentum": self.momentum, "affine": bool(self.params)}

    def flops(self) -> int:
        """About 4 operations per value: subtract, divide, scale, shift."""
        return 4 * elements(self.input_shape)


class BatchNorm2D(_BatchNorm):
    """Batch norm over feature maps, (N, C, H, W): one μ, v, γ, β per channel, PyTorch's ``nn.BatchNorm2d``."""

    type_name = "batchnorm2d"
    spec_class = BatchNorm2DSpec


class BatchNorm1D(_BatchNorm):
    """Batch norm over features, (N, F): one μ, v, γ, β per feature, PyTorch's ``nn.BatchNorm1d``."""

    type_name = "batchnorm1d"
    spec_class = BatchNorm1DSpec
