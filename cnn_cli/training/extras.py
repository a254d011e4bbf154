"""The optional extras a config may ask for, checked before anything is built: one line naming the pip command if missing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnn_cli.training.mlflow_log import require_mlflow
from cnn_cli.training.tensorboard import require_extras as require_tensorboard

if TYPE_CHECKING:
    from cnn_cli.config.sections import Config


def require_extras(config: Config | None) -> None:
    """Refuse (exit 2) a run whose config asks for TensorBoard or MLflow when that extra is not installed (or its server is down)."""
    require_tensorboard(config)
    require_mlflow(config)
