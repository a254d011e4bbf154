"""How much memory a model needs for a batch, checked before anything is allocated."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from cnn_cli.config.sections import DataConfig, ModelConfig, TrainConfig
from cnn_cli.errors import CnnError, ModelBuildError
from cnn_cli.layers import Shape
from cnn_cli.layers.base import LayerSpec, elements
from cnn_cli.layers.residual import ResidualSpec
from cnn_cli.nn.shapes import GeometryError


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a model needs: parameters (with gradients and optimizer state) and activations for a batch."""

    param_bytes: int
    activation_bytes: int
    biggest_layer: int  # index of the layer with the largest share

    @property
    def total(self) -> int:
        return self.param_bytes + self.activation_bytes


def estimate_memory(model: ModelConfig, batch_size: int, dtype: str, training: bool = True) -> MemoryEstimate:
    """Parameters x4 (values, gradients, two optimizer arrays) and, per sample, every layer's output and workspace
    (x2 in training: the backward's gradients are as large), in exact integer arithmetic."""
    itemsize = 8 if dtype == "float64" else 4
    shapes = layer_shapes(model)
    per_layer = []
    for spec, shape_in, shape_out in zip(model.layers, shapes, shapes[1:], strict=False):
        params = spec.num_params(shape_in) * (4 if training else 1)
        activations = (elements(shape_out) + spec.workspace(shape_in)) * batch_size * (2 if training else 1)
        per_layer.append((params * itemsize, activations * itemsize))
    biggest = max(range(len(per_layer)), key=lambda i: sum(per_layer[i]), default=0)
    return MemoryEstimate(sum(p for p, _ in per_layer), sum(a for _, a in per_layer), biggest)


def _size_words(n: int) -> str:
    if n >= 1e15:
        return f"{float(n):.1e} bytes"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 1e3:,.1f} KB"


def most_images(data: DataConfig) -> tuple[int, int] | None:
    """(training images, images of the largest split) of the config's dataset, where that is known without reading
    it (the catalog's sizes, IDX headers, ``data.limit``), else None. No batch can be larger, so a larger batch
    size is estimated at these sizes; training clamps ``train.batch_size`` to the training images."""
    from cnn_cli.data.catalog import DATASETS, IDX_DATASET, TEST_LABELS, TRAIN_LABELS
    from cnn_cli.data.idx import read_count

    if data.dataset in DATASETS:
        spec = DATASETS[data.dataset]
        train, test = (spec.file(role).size - 8 for role in (TRAIN_LABELS, TEST_LABELS))  # an 8-byte header, a byte a label
    elif data.dataset == IDX_DATASET and data.paths:
        try:
            train, test = (read_count(data.paths[role]) for role in (TRAIN_LABELS, TEST_LABELS))
        except (CnnError, KeyError):
            return None
    else:
        return None
    train = min(train, data.limit) if data.limit else train
    return max(train, 1), max(train, test, 1)


def check_memory(
    model: ModelConfig,
    train: TrainConfig,
    batch_size: int | None = None,
    dtype: str | None = None,
    batch_hint: str = "",
    images: tuple[int, int] | None = None,
) -> None:
    """Refuse a model whose estimated memory (training at ``batch_size``, evaluating at eval_batch_size) is over the limit.

    ``batch_hint`` names how the caller's batch can be made smaller (``--batch-size``); ``images`` bounds every
    batch (:func:`most_images`).

    Raises:
        ModelBuildError: with the estimate, the biggest layer and the key that raises the limit.
    """
    batch = train.batch_size if batch_size is None else batch_size
    if images is not None:
        batch = min(batch, images[0])
    dtype = dtype or train.dtype
    fit = estimate_memory(model, batch, dtype)
    if batch_size is None:
        eval_batch = min(train.eval_batch_size, images[1]) if images is not None else train.eval_batch_size
        evaluation = estimate_memory(model, eval_batch, dtype, training=False)
        if evaluation.total > fit.total:
            fit, batch = evaluation, eval_batch
    limit = train.memory_limit_gb * 1e9
    if fit.total <= limit:
        return
    index = fit.biggest_layer
    needed_gb = math.ceil(fit.total / 1e9)
    if fit.total > 1e15:  # a petabyte: no machine; a size was mistyped
        remedy = "that is more than any machine has; check the layer sizes"
    else:
        remedy = f"raise train.memory_limit_gb (e.g. --set train.memory_limit_gb={needed_gb}) if the machine has that much memory"
    if batch_hint:
        remedy = f"use a smaller {batch_hint}, or raise train.memory_limit_gb in the config"
    raise ModelBuildError(
        f"model.layers[{index}] ({model.layers[index].type}): the model needs about {_size_words(fit.total)} "
        f"({_size_words(fit.param_bytes)} for parameters, gradients and optimizer state, {_size_words(fit.activation_bytes)} "
        f"for the activations of a batch of {batch} in {dtype}; this layer is the largest), over the limit "
        f"train.memory_limit_gb = {train.memory_limit_gb:g}; {remedy}",
        f"model.layers[{index}]",
    )


def layer_shapes(model: ModelConfig) -> list[Shape]:
    """One sample's shape at the input and after every layer (shape inference), or ModelBuildError naming the layer."""
    shapes: list[Shape] = [tuple(model.input_shape)]
    for index, spec in enumerate(model.layers):
        try:
            shapes.append(spec.output_shape(shapes[-1]))
        except GeometryError as exc:
            raise ModelBuildError(f"model.layers[{index}] ({spec.type}): {exc}", f"model.layers[{index}]") from None
    return shapes


def layer_inputs(model: ModelConfig) -> Iterator[tuple[str, LayerSpec, Shape]]:
    """Every layer spec, residual blocks' inner layers included, with its config path and one sample's input shape."""
    return _specs_with_inputs(model.layers, layer_shapes(model), "model.layers")


def _specs_with_inputs(specs: list[LayerSpec], shapes: list[Shape], path: str) -> Iterator[tuple[str, LayerSpec, Shape]]:
    for index, (spec, shape) in enumerate(zip(specs, shapes, strict=False)):
        where = f"{path}[{index}]"
        yield where, spec, shape
        if isinstance(spec, ResidualSpec):
            yield from _specs_with_inputs(spec.layers, spec.inner_shapes(shape), f"{where}.layers")
