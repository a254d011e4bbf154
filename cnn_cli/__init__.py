"""cnn: a convolutional network trainer whose backward passes are written by hand in NumPy.

The notebook API::

    from cnn_cli import build_model, load_config, train
    model = build_model("mnist")          # a built-in config name, a path, or a dict
    result = train(load_config("smoke"))  # a run folder under ./runs

The packages below and the direction of their imports are in ARCHITECTURE.md.
"""

from typing import Any

from cnn_cli import (
    blas_env,  # noqa: F401 - must run before NumPy is imported
    environment,  # noqa: F401 - must run before matplotlib is imported
)
from cnn_cli.config.load import load_config
from cnn_cli.config.sections import Config
from cnn_cli.model.network import Model, build_model
from cnn_cli.version import __version__

__all__ = ["Config", "Model", "__version__", "build_model", "load_config", "train"]


def __getattr__(name: str) -> Any:
    """``train`` is imported on first use: the training stack (and its imports) loads only when asked for."""
    if name == "train":
        from cnn_cli.training.train import train

        return train
    raise AttributeError(f"module 'cnn_cli' has no attribute {name!r}")
