"""Reading thousands of run configs that share most of their lines: each distinct entry is parsed once.

``cnn compare runs/`` reads the config.yaml of every run, and the runs of a sweep differ
in a line or two (``lr: 0.003``, ``seed: 4``). Parsing each whole file costs about half a
millisecond of YAML even in C, so 5,000 runs would take seconds. :class:`YamlCache` cuts a
config into its entries instead: each top-level key, and each key of a block section
(``train:`` then ``  epochs: 10``), is a piece of text parsed on its own, once per distinct
text, under the same bounds as a whole file (:func:`cnn_cli.config.yaml_text.load_entry`).

The result is what :func:`cnn_cli.config.yaml_text.parse_yaml` gives for the whole file,
or the whole file is parsed after all: whenever a file does not cut cleanly (flow style at
the top, an anchor used in another entry, a document marker, a key twice, a tab, anything
unusual), an entry does not parse, or the entries together pass the size bounds. Errors
therefore read exactly as they always have.

The values returned are shared between the configs that have the same entry: read them,
never change them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from cnn_cli.config.yaml_text import MAX_CONFIG_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES, load_entry, parse_yaml

KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):(?:[ \r].*)?")  # `train:` or `name: tiny` at column 0 (of a dedented section too)
SECTION_HEAD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):[ \r]*")  # `train:` alone on its line: a block mapping follows
INDENT = "  "  # cnn writes block sections indented by two spaces

Entry = tuple[str, Any, int, int]  # (key, value, values after expanding aliases, levels)


class YamlCache:
    """Parse config texts entry by entry, each distinct entry once (see the module docstring)."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry | None] = {}  # entry text -> what it reads as; None: it does not read alone
        self._sections: dict[str, tuple[Any, int, int] | None] = {}  # a top-level entry's text -> (value, values, levels)

    def parse(self, text: str, source: str) -> Any:
        """The config in ``text``, as ``parse_yaml(text, source)[0]`` gives it (its errors too)."""
        data = None
        if len(text) <= MAX_CONFIG_BYTES:
            data = _as_json(text) if text.lstrip().startswith("{") else self._by_entries(text)
        return parse_yaml(text, source)[0] if data is None else data

    def _by_entries(self, text: str) -> dict[str, Any] | None:
        chunks = _cut(_lines(text))
        if not chunks:
            return None
        data: dict[str, Any] = {}
        values = 1
        for key, lines in chunks:
            whole = "".join(lines)
            if whole not in self._sections:
                self._sections[whole] = self._section(key, lines)
            read = self._sections[whole]
            if read is None or key in data:
                return None
            data[key], size, levels = read
            values += size + 1
            if values > MAX_YAML_NODES or levels >= MAX_YAML_DEPTH:
                return None
        return data

    def _section(self, key: str, lines: list[str]) -> tuple[Any, int, int] | None:
        """One top-level entry: a block section key by key, anything else whole."""
        if SECTION_HEAD.fullmatch(lines[0].rstrip("\n")) and len(lines) > 1:
            entries = _cut([line.removeprefix(INDENT) for line in lines[1:]])
            if entries and all(line.startswith(INDENT) or not line.strip() for line in lines[1:]):
                section: dict[str, Any] = {}
                size, levels = 1, 1
                for name, part in entries:
                    entry = self._entry(name, "".join(part))
                    if entry is None or name in section:
                        return None
                    section[name] = entry[1]
                    size, levels = size + entry[2] + 1, max(levels, entry[3] + 1)
                return section, size, levels
        entry = self._entry(key, "".join(lines))
        return None if entry is None else (entry[1], entry[2], entry[3])

    def _entry(self, key: str, text: str) -> Entry | None:
        if text not in self._entries:
            try:
                data, (size, levels) = load_entry(text)
            except (yaml.YAMLError, ValueError, RecursionError):
                data = None
            ok = isinstance(data, dict) and list(data) == [key]
            self._entries[text] = (key, data[key], size, levels) if ok else None  # type: ignore[index]
        return self._entries[text]


def _as_json(text: str) -> dict[str, Any] | None:
    """A config written as JSON (which YAML reads the same), read by the JSON parser; None for anything else.

    JSON that YAML would refuse or read otherwise goes to YAML, for its answer and its
    message: a key twice, nesting past the depth bound (JSON has no aliases, and a config
    within the size bound holds fewer values than the bound allows).
    """

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({key for key, _ in items}) < len(items):
            raise ValueError("a key twice")
        return dict(items)

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) and _depth(data) < MAX_YAML_DEPTH else None


def _depth(value: Any) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return 1 + max((_depth(child) for child in children), default=0)


def _lines(text: str) -> list[str]:
    """The lines of ``text``, each with its ``\\n`` (YAML's line break; ``str.splitlines`` would also cut at form feeds)."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _cut(lines: list[str]) -> list[tuple[str, list[str]]] | None:
    """The entries of a block mapping whose keys start at column 0: (key, its lines, each with its line end).

    None if the text does not cut cleanly.

    A line at column 0 is a key, a comment, or a block sequence's ``-`` (a list under the
    key before it); anything else there (``---``, ``{``, a quoted key, a tab) means the
    text is not cut.
    """
    entries: list[tuple[str, list[str]]] = []
    for line in lines:
        if not line or line[0] in " #\n" or line.startswith("- ") or line.rstrip("\n") == "-":
            if entries:
                entries[-1][1].append(line)
            elif line.strip() and not line.lstrip().startswith("#"):
                return None  # content before the first key
            continue
        match = KEY.fullmatch(line.rstrip("\n"))
        if match is None:
            return None
        entries.append((match.group(1), [line]))
    return entries
