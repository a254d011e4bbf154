"""Short real training runs that log per-layer gradient norms in the ``gradients.csv`` format.

The training loop's own logger is not used here: these helpers compute every
value independently from :meth:`Model.backward_trace` and ``model.grads`` after
steps of the real optimizer, so tests of the plot and of the deep-sigmoid /
deep-relu configs do not depend on it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn_cli.config.load import load_config
from cnn_cli.config.sections import Config
from cnn_cli.data import load_dataset
from cnn_cli.learn.backward_views import relu_mask
from cnn_cli.model.network import LayerGradient, Model, build_model
from cnn_cli.nn.optim import make_optimizer
from cnn_cli.runs.gradients import GRADIENT_COLUMNS


def _norm(array: np.ndarray | None) -> float | str:
    return "" if array is None else float(np.linalg.norm(np.asarray(array, dtype=np.float64)))


def gradient_rows(
    model: Model,
    backward: list[LayerGradient],
    epoch: int,
    step: int,
    event: str,
    update_ratio: dict[str, float] | None = None,
) -> list[dict[str, object]]:
    """One ``gradients.csv`` row per layer (input side first) for the batch just backpropagated."""
    rows = []
    for grad in backward:
        layer = grad.layer
        dead: float | str = ""
        if layer.type_name == "relu":
            passed = relu_mask(layer, grad.grad_output.shape)
            dead = float((~passed.any(axis=0)).mean())  # units that passed nothing for any sample
        ratio = (update_ratio or {}).get(layer.name, "")
        rows.append(
            {
                "epoch": epoch,
                "step": step,
                "event": event,
                "layer": layer.name,
                "type": layer.type_name,
                "weight_grad_norm": _norm(layer.grads.get("weight")),
                "bias_grad_norm": _norm(layer.grads.get("bias")),
                "input_grad_norm": _norm(grad.grad_input),
                "update_ratio": ratio,
                "dead_fraction": dead,
            }
        )
    return rows


def write_gradients_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=GRADIENT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass
class ShortRun:
    model: Model
    rows: list[dict[str, object]]
    weight_norms: np.ndarray  # (steps, weighted layers): ‖dL/dW‖ from model.grads at each step
    weighted_layers: list[str]
    losses: list[float]


def short_run(config: str | Config, steps: int, limit: int = 2000, log_every: int = 5, seed: int = 0) -> ShortRun:
    """``steps`` steps of the config's own optimizer on real MNIST (``limit`` training images, run from the repository root).

    Rows are logged at step 1 and every ``log_every`` steps (event ``step``), and once more as an ``epoch`` row at the end.
    """
    config = load_config(config) if isinstance(config, str) else config
    model = build_model(config, seed=seed)
    splits = load_dataset(dataset="mnist", data_dir=config.data.data_dir, val_size=500, limit=limit, seed=seed, progress=False)
    optimizer = make_optimizer(config.optimizer.name, config.optimizer.lr)
    rng = np.random.default_rng(seed)
    weighted = [layer.name for layer in model.layers if "weight" in layer.params]
    rows: list[dict[str, object]] = []
    norms, losses = [], []
    batch = config.train.batch_size
    for step in range(1, steps + 1):
        chosen = rng.choice(len(splits.train.labels), batch, replace=False)
        x, labels = splits.train.images[chosen], splits.train.labels[chosen]
        logits = model.trace(x, training=True)[-1].output
        loss, grad_logits = model.loss(logits, labels)
        backward = model.backward_trace(grad_logits)
        grads = model.grads
        norms.append([np.linalg.norm(grads[f"{name}.weight"].astype(np.float64)) for name in weighted])
        losses.append(loss)
        before = {name: value.copy() for name, value in model.params.items()}
        optimizer.step(model.params, grads)
        ratios = {
            name: float(
                np.linalg.norm(model.params[f"{name}.weight"] - before[f"{name}.weight"]) / np.linalg.norm(before[f"{name}.weight"])
            )
            for name in weighted
        }
        if step % log_every == 0 or step == 1:
            rows.extend(gradient_rows(model, backward, 1, step, "step", ratios))
    rows.extend(gradient_rows(model, backward, 1, steps, "epoch", ratios))
    return ShortRun(model, rows, np.array(norms), weighted, losses)


def assert_picture(path: Path, size: tuple[int, int]) -> None:
    """A readable PNG of this pixel size with something drawn on it (not a blank canvas)."""
    from PIL import Image

    assert path.is_file(), path
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.size == size, (path.name, image.format, image.size)
        grey = np.asarray(image.convert("L"), dtype=float)
    inked = (grey < 200).mean()
    assert grey.std() > 10 and inked > 0.02, f"{path.name}: looks blank (std {grey.std():.1f}, {inked:.1%} inked)"
