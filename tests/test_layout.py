"""The layout ARCHITECTURE.md describes: sizes, no import circles, the public names of the package."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from tests.support import REPO_ROOT

PACKAGE = REPO_ROOT / "cnn_cli"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every cnn_cli module ``name`` imports, at any depth of the file (function-local and TYPE_CHECKING too)."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            candidates = [sub if sub in modules else node.module for sub in submodules]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate not in modules and "." in candidate:
                candidate = candidate.rsplit(".", 1)[0]
            if candidate in modules and candidate not in (name, "cnn_cli"):
                targets.add(candidate)
    return targets


def test_no_module_is_over_400_lines() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in _modules().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_no_function_is_over_80_lines() -> None:
    long = {}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                assert node.end_lineno is not None
                if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = node.end_lineno - start + 1
    assert long == {}


def test_the_module_import_graph_has_no_circle() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the current path, 2 done
    circles = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state[target] == 1:
                circles.append(path[path.index(target) :] + [target])
            elif state[target] == 0:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if state[name] == 0:
            visit(name, [name])
    assert circles == []


def test_a_circle_would_be_found(tmp_path: Path) -> None:
    """The import reader sees function-local imports, so the circle test above can fail."""
    (tmp_path / "a.py").write_text("def f():\n    from cnn_cli.b import g\n", encoding="utf-8")
    modules = {"cnn_cli.a": tmp_path / "a.py", "cnn_cli.b": tmp_path / "a.py"}
    assert _imports("cnn_cli.a", tmp_path / "a.py", modules) == {"cnn_cli.b"}


def test_the_public_names_of_the_package() -> None:
    code = "from cnn_cli import Config, Model, __version__, build_model, load_config, train; print(train.__module__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cnn_cli.training.train"


def test_only_the_command_line_imports_click() -> None:
    users = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if any(line.startswith(("import click", "from click")) for line in path.read_text(encoding="utf-8").splitlines())
    )
    assert users and all(user.startswith("cli/") for user in users), users
