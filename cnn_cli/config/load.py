"""Loading a config by built-in name or path, following ``extends:``, with overrides, and writing it back as YAML."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cnn_cli.bounded_read import read_text
from cnn_cli.config.build import config_from_dict
from cnn_cli.config.overrides import apply_override
from cnn_cli.config.sections import BUILTIN_CONFIG_PACKAGE, Config
from cnn_cli.config.yaml_text import MAX_CONFIG_BYTES, parse_yaml
from cnn_cli.errors import ConfigError

MAX_EXTENDS = 16  # configs in one chain of extends: far more than layering needs, and a bound on hostile chains


def builtin_configs() -> list[str]:
    """Names of the configs shipped inside the package (without .yaml)."""
    folder = resources.files(BUILTIN_CONFIG_PACKAGE)
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_config_path(name_or_path: str | Path) -> tuple[str, str]:
    """Find a config by path, or by bare name among the built-in ones. Returns (source, text)."""
    source, text, _ = _locate(name_or_path)
    return source, text


def _locate(name_or_path: str | Path) -> tuple[str, str, str]:
    """(source, text, identity): identity tells two files apart (a resolved path, or ``builtin:NAME``)."""
    path = Path(name_or_path)
    if path.exists() or path.is_symlink():  # a FIFO or device too: the bounded reader refuses it without waiting
        text = read_text(path, MAX_CONFIG_BYTES, "config", ConfigError)
        return str(path), text, str(path.resolve())
    stem = _stem(path.name)
    if path.parent == Path(".") and stem in builtin_configs():
        text = resources.files(BUILTIN_CONFIG_PACKAGE).joinpath(f"{stem}.yaml").read_text(encoding="utf-8")
        return f"{stem}.yaml", text, f"builtin:{stem}"
    known = builtin_configs()
    close = difflib.get_close_matches(stem, known, n=2, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? Or give" if close else "give"
    raise ConfigError(f"{name_or_path}: config file not found; {hint} a path or one of the built-in configs: " + ", ".join(known))


def _stem(name: str) -> str:
    return name.removesuffix(".yaml").removesuffix(".yml")


@dataclass
class ConfigSource:
    """A config file as plain data, every ``extends:`` followed, with the file and line each key came from."""

    data: dict[str, Any]
    source: str  # the file named on the command line
    lines: dict[str, int] = field(default_factory=dict)  # key path -> line
    files: dict[str, str] = field(default_factory=dict)  # key path -> the file that line is in


def read_config(name_or_path: str | Path) -> ConfigSource:
    """Read a config file (by path or built-in name) and the chain of configs it extends, merged.

    ``extends: NAME`` names a built-in config or a path (relative to the extending
    file). The file's keys are deep-merged over its parent's: mappings merge key by key,
    any other value (a list too, e.g. ``model.layers``) replaces the parent's whole.
    ``name`` is never inherited: without one, a file is named after itself.

    Raises:
        ConfigError: one line naming the file and line (a missing parent, a cycle, a YAML error).
    """
    source, text, identity = _locate(name_or_path)
    data, places = _read_chain(source, text, [(identity, source)])
    return ConfigSource(data, source, {k: line for k, (_, line) in places.items()}, {k: file for k, (file, _) in places.items()})


def _read_chain(source: str, text: str, chain: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, tuple[str, int]]]:
    """One file of a chain, merged over the parents it extends; ``chain`` holds (identity, source) from the first file."""
    data, line_numbers = parse_yaml(text, source)
    if data is None or data == {}:  # one rule for an empty file, one of only comments, and `{}`
        raise ConfigError(
            f"{source}: the config is empty (no keys); write the sections to change (model, data, optimizer, "
            "schedule, train), or start from a built-in config with `extends: mnist`"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (model, data, optimizer, schedule, train)")
    data.setdefault("name", _stem(Path(source).name))
    places = {key: (source, line) for key, line in line_numbers.items()}
    if "extends" not in data:
        return data, places
    where = f"{source}:{line_numbers.get('extends', 1)}: extends"
    parent_name = data.pop("extends")
    parent_source, parent_text, parent_identity = _locate_parent(parent_name, source, chain[-1][0], where)
    trail = " -> ".join([*(shown for _, shown in chain), parent_source])
    if any(parent_identity == identity for identity, _ in chain):
        raise ConfigError(f"{where}: {parent_name!r} leads back to a config already in the chain, a cycle ({trail})")
    if len(chain) >= MAX_EXTENDS:
        raise ConfigError(f"{where}: more than {MAX_EXTENDS} configs in one chain ({trail})")
    parent, parent_places = _read_chain(parent_source, parent_text, [*chain, (parent_identity, parent_source)])
    _merge(parent, data)
    merged_places = {path: places.get(path) or parent_places[path] for path in _paths(parent) if path in places or path in parent_places}
    return parent, merged_places


def _locate_parent(name: Any, child_source: str, child_identity: str, where: str) -> tuple[str, str, str]:
    """The file ``extends: name`` means: a path relative to the child's folder first, then a built-in config.

    A built-in config may extend only built-in configs.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: expected the name of a built-in config or a path, got {name!r}")
    beside = None if child_identity.startswith("builtin:") else Path(child_source).parent / name
    if beside is not None and beside.is_file():
        return _locate(beside)
    if Path(name).parent == Path(".") and _stem(name) in builtin_configs():
        return _locate(_stem(name))
    looked = f"no file {beside} and " if beside is not None else ""
    raise ConfigError(f"{where}: cannot find {name!r}: {looked}no built-in config of that name (built-in: {', '.join(builtin_configs())})")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    """Deep-merge ``over`` into ``base`` in place: mappings merge key by key; anything else, lists too, replaces whole."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _paths(value: Any, path: str = "") -> Iterator[str]:
    """Every key path in ``value``, written as the YAML reader writes them (``model.layers[0].type``)."""
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = ((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return
    for sub, item in items:
        yield sub
        yield from _paths(item, sub)


def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read (following ``extends:``), override and validate a config. Raises ConfigError with file:line (or --set): key.path."""
    read = read_config(name_or_path)
    set_paths = {apply_override(read.data, assignment): assignment for assignment in overrides}
    return config_from_dict(read.data, read.source, read.lines, set_paths, read.files)


def config_to_yaml(config: Config) -> str:
    """The resolved config as YAML text (every default written out)."""
    return yaml.safe_dump(config.as_dict(), sort_keys=False, default_flow_style=None)
