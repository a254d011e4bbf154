"""Reading config YAML safely: bounded size, depth and aliases, no duplicate keys, and the line of every key."""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from cnn_cli.errors import ConfigError

try:  # libyaml's parser, when PyYAML was built with it
    from yaml.cyaml import CParser  # type: ignore[attr-defined]  # not in PyYAML's stubs
except ImportError:  # pragma: no cover - PyYAML without libyaml: everything in Python
    CParser = None  # type: ignore[assignment,misc]

# Bounds on what a config file may cost to read. A config is a few KB; these stop hostile
# files (a multi-MB file, 100,000 nested brackets, a "billion laughs" alias bomb) early.
# A config is a few KB. It is stored in every checkpoint, where NumPy keeps text as 4 bytes a character:
# 128 KiB of JSON stays well below the checkpoint's metadata limit (checkpoint.MAX_META_BYTES, 1 MiB).
MAX_CONFIG_BYTES = 128 * 1024


MAX_YAML_DEPTH = 64


MAX_YAML_NODES = 100_000  # after expanding aliases


class _Bounds:
    """Limits on depth and alias expansion and no duplicate keys, for a loader composing nodes in Python.

    The composer is recursive, so depth is checked on the way down; an alias
    counts as the whole subtree it stands for, so a "billion laughs" file is refused
    after a handful of nodes instead of expanding to gigabytes.
    """

    anchors: dict[Any, Any]  # these three: the loader's parser and composer
    check_event: Any
    peek_event: Any

    def __init__(self, stream: str) -> None:
        super().__init__(stream)  # type: ignore[call-arg]  # the loader's own __init__ takes the stream
        self._depth = 0
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes after expansion, height)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            anchored = self.anchors.get(event.anchor)
            if anchored is not None and id(anchored) not in self._sizes:
                raise yaml.composer.ComposerError(
                    None, None, f"alias *{event.anchor} inside its own anchor (a structure that contains itself)", event.start_mark
                )
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
        node = super().compose_node(parent, index)  # type: ignore[misc]  # the loader's Composer
        self._depth -= 1
        if node is not None and id(node) not in self._sizes:
            children: list[Any] = []
            if isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            sizes = [self._sizes.get(id(child), (1, 1)) for child in children]
            size = 1 + sum(s for s, _ in sizes)
            height = 1 + max((h for _, h in sizes), default=0)
            if size > MAX_YAML_NODES or height > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"expands to more than {MAX_YAML_NODES:,} values or {MAX_YAML_DEPTH} levels (aliases included)",
                    node.start_mark,
                )
            self._sizes[id(node)] = (size, height)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    line = key_node.start_mark.line + 1
                    if key_node.value in first:
                        raise yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"duplicate key {key_node.value!r} (first at line {first[key_node.value]}); each key may appear once",
                            key_node.start_mark,
                        )
                    first[key_node.value] = line
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]  # the loader's SafeConstructor


class _BoundedLoader(_Bounds, yaml.SafeLoader):
    """PyYAML's safe loader, all in Python, with the bounds of :class:`_Bounds` and floats like 1e-3."""


_Loader: type[Any] = _BoundedLoader
if CParser is not None:

    class _FastBoundedLoader(_Bounds, Composer, CParser, SafeConstructor, Resolver):  # type: ignore[misc]
        """The same loader reading its events from libyaml's C parser: the same nodes and bounds, several times faster.

        Only the scanning and parsing is in C (libyaml's parser keeps its own stack, so 100,000
        nested brackets cost it nothing); the nodes are still composed here, in Python, under
        :class:`_Bounds`. ``cnn compare`` reads the config of every run it lists: thousands.
        """

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            Composer.__init__(self)
            self._depth = 0
            self._sizes = {}

    _Loader = _FastBoundedLoader

# YAML 1.1 wants a dot in a float (1.0e-3); people write 1e-3 and mean a number.
_LOADERS: list[type[Any]] = [_BoundedLoader] if _Loader is _BoundedLoader else [_BoundedLoader, _Loader]
for _loader in _LOADERS:
    _loader.add_implicit_resolver(
        "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)?\.?[0-9]+[eE][-+]?[0-9]+$"), list("-+0123456789.")
    )


def _line_numbers(node: yaml.Node, path: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{path}.{key_node.value}" if path else str(key_node.value)
            out[key] = key_node.start_mark.line + 1
            _line_numbers(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = f"{path}[{i}]"
            out[key] = item.start_mark.line + 1
            _line_numbers(item, key, out)
    return out


def _load_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """The document and its root node, read by libyaml's parser where PyYAML has it.

    A text libyaml refuses is read again by PyYAML's own parser, all in Python: a config
    the two parsers disagree on is accepted when either reads it, and a config both refuse
    gets PyYAML's message, with the line shown, as it always has.
    """
    try:
        return _load_with(_Loader, text)
    except yaml.YAMLError:
        if _Loader is _BoundedLoader:
            raise
    return _load_with(_BoundedLoader, text)


def _load_with(loader_class: type[Any], text: str) -> tuple[Any, yaml.Node | None]:
    return _load_measured(loader_class, text)[:2]


def _load_measured(loader_class: type[Any], text: str) -> tuple[Any, yaml.Node | None, tuple[int, int]]:
    """The document, its root node, and (values after expanding aliases, levels) under the bounds."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        return data, node, loader._sizes.get(id(node), (0, 0))
    finally:
        loader.dispose()


def load_entry(text: str) -> tuple[Any, tuple[int, int]]:
    """One piece of a config (``lr: 0.01``), read as :func:`parse_yaml` reads a whole file: (data, (values, levels)).

    For :mod:`cnn_cli.config.yaml_cache`, which reads a config entry by entry. Raises
    ``yaml.YAMLError`` (the caller then reads the whole file, for the message).
    """
    data, _, size = _load_measured(_Loader, text)
    return data, size


def parse_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    """Safe-load YAML text within size, depth and alias limits; errors give the file, line and column."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: over the limit of {MAX_CONFIG_BYTES:,} bytes for a config file (a config is a few KB)")
    try:
        data, node = _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "invalid YAML"
        if isinstance(exc, yaml.constructor.ConstructorError) and "could not determine a constructor" in problem:
            problem = f"{problem} (only plain YAML is accepted; Python object tags are refused)"
        raise ConfigError(f"{where}: YAML error: {problem}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. an int with more digits than Python converts
        raise ConfigError(f"{source}: YAML error: {str(exc).splitlines()[0]}") from None
    return data, (_line_numbers(node) if node is not None else {})
