"""cnn: a convolutional network trainer whose backward passes are written by hand in NumPy.

The notebook API::

    from cnn_cli import build_model, load_config
    model = build_model("mnist")          # a built-in config name, a path, or a dict
"""

__version__ = "0.1.0"

from cnn_cli import blas_env  # noqa: E402, F401 - must run before NumPy is imported
from cnn_cli.config import Config, load_config  # noqa: E402
from cnn_cli.model import Model, build_model  # noqa: E402

__all__ = ["Config", "Model", "__version__", "build_model", "load_config"]
