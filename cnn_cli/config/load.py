"""Loading a config by built-in name or path, with overrides, and writing it back as YAML."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

import yaml

from cnn_cli.config.build import config_from_dict
from cnn_cli.config.overrides import apply_override
from cnn_cli.config.sections import BUILTIN_CONFIG_PACKAGE, Config
from cnn_cli.config.yaml_text import MAX_CONFIG_BYTES, parse_yaml
from cnn_cli.errors import ConfigError


def builtin_configs() -> list[str]:
    """Names of the configs shipped inside the package (without .yaml)."""
    folder = resources.files(BUILTIN_CONFIG_PACKAGE)
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_config_path(name_or_path: str | Path) -> tuple[str, str]:
    """Find a config by path, or by bare name among the built-in ones. Returns (source, text)."""
    path = Path(name_or_path)
    if path.is_file():
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_CONFIG_BYTES + 1)  # never read more than the limit
            return str(path), raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}") from None
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if path.parent == Path(".") and stem in builtin_configs():
        text = resources.files(BUILTIN_CONFIG_PACKAGE).joinpath(f"{stem}.yaml").read_text(encoding="utf-8")
        return f"{stem}.yaml", text
    known = builtin_configs()
    close = difflib.get_close_matches(stem, known, n=2, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? Or give" if close else "give"
    raise ConfigError(f"{name_or_path}: config file not found; {hint} a path or one of the built-in configs: " + ", ".join(known))


def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a config. Raises ConfigError with file:line (or --set): key.path."""
    source, text = resolve_config_path(name_or_path)
    data, line_numbers = parse_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (model, data, optimizer, schedule, train)")
    data.setdefault("name", Path(source).name.removesuffix(".yaml").removesuffix(".yml"))
    set_paths = {apply_override(data, assignment): assignment for assignment in overrides}
    return config_from_dict(data, source, line_numbers, set_paths)


def config_to_yaml(config: Config) -> str:
    """The resolved config as YAML text (every default written out)."""
    return yaml.safe_dump(config.as_dict(), sort_keys=False, default_flow_style=None)
