"""What one epoch reads: the batches of every split, described before training starts."""

from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING

import numpy as np

from cnn_cli.config.memory import layer_inputs
from cnn_cli.errors import ConfigError
from cnn_cli.layers.base import elements
from cnn_cli.runs.evaluation import EvalResult, evaluate
from cnn_cli.training.state import EpochData

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from cnn_cli.config.sections import Config
    from cnn_cli.data import DataSplits


class FixedBatches(EpochData):
    """The same first ``count`` batches of epoch 0 in every epoch."""

    def __init__(self, config: Config, splits: DataSplits, count: int, validate_on_batches: bool) -> None:
        super().__init__(config, splits)
        self.fixed = [(x, y) for x, y in itertools.islice(super().batches(0, 0), count)]
        self.steps_per_epoch = len(self.fixed)
        self.validate_on_batches = validate_on_batches

    def batches(self, epoch: int, start_batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return iter([(x.copy(), y.copy()) for x, y in self.fixed[start_batch:]])

    def validate(self, model) -> EvalResult | None:
        if not self.validate_on_batches:
            return super().validate(model)
        images = np.concatenate([x for x, _ in self.fixed])
        labels = np.concatenate([y for _, y in self.fixed])
        return evaluate(model, images, labels, self.config.train.eval_batch_size)


def clamp_batch_size(config: Config, images: int, log: Callable[[str], None]) -> Config:
    """``train.batch_size`` cut to the training images when it is larger (as every framework does), with a note.

    The run's config.yaml then records the batch size the run really used.
    """
    if config.train.batch_size <= images or images < 1:
        return config
    log(f"note: train.batch_size {config.train.batch_size:,} is larger than the {images:,} training images; using {images:,}")
    return dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=images))


def epoch_data(config: Config, splits: DataSplits, one_batch: bool) -> EpochData:
    """What each epoch trains on: everything, the ``train.overfit_batches`` first batches, or one batch (fast dev run)."""
    if one_batch:
        return FixedBatches(config, splits, 1, validate_on_batches=False)
    if config.train.overfit_batches:
        return FixedBatches(config, splits, config.train.overfit_batches, validate_on_batches=True)
    return EpochData(config, splits)


def check_batch_statistics(config: Config, train_images: int) -> None:
    """A batch norm in training needs more than one value per channel; refuse a batch that would give it one.

    A ``batchnorm1d`` sees one value per feature and image, a ``batchnorm2d`` H·W: a batch of
    one image (``batch_size`` 1, or the last, partial batch of an epoch) is too few for the former.
    Batch norms inside residual blocks are checked too, at the shape their block gives them.
    """
    tc = config.train
    remainder = train_images % tc.batch_size
    smallest = remainder if remainder and not tc.drop_last else tc.batch_size
    for where, spec, shape in layer_inputs(config.model):
        if spec.type.startswith("batchnorm") and smallest * elements(shape[1:]) < 2:
            raise ConfigError(
                f"train.batch_size: {where} ({spec.type}) needs more than one value per channel in training, but "
                f"{train_images} training images in batches of {tc.batch_size} give a batch of {smallest} image; "
                "set train.drop_last: true or another batch_size",
                "train.batch_size",
            )


def describe_batches(data: EpochData) -> list[str]:
    """A line saying that a run trains on a few fixed batches (nothing for a normal run)."""
    if not isinstance(data, FixedBatches) or not data.validate_on_batches:
        return []
    images = sum(len(y) for _, y in data.fixed)
    return [
        f"overfit-batches: training on the same {len(data.fixed)} batch(es) ({images} images) every epoch; "
        "validation is on those same batches, the final test on the whole test split"
    ] + (
        [
            f"note: the {data.config.schedule.name} schedule counts epochs, here of {len(data.fixed)} step(s) each; "
            "--set schedule.name=constant keeps the lr"
        ]
        if data.config.schedule.name != "constant"
        else []
    )


def one_batch_splits(config: Config, splits: DataSplits) -> DataSplits:
    """Validation and test cut to their first ``train.eval_batch_size`` images (one evaluation batch each)."""
    size = config.train.eval_batch_size
    val, test = splits.val, splits.test
    return dataclasses.replace(
        splits,
        val=dataclasses.replace(val, images=val.images[:size], labels=val.labels[:size]),
        test=dataclasses.replace(test, images=test.images[:size], labels=test.labels[:size]),
    )
