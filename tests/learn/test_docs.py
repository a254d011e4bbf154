"""``cnn docs``: the backprop guide ships inside the package and prints by topic."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cnn_cli.cli import explain as explain_cli
from cnn_cli.cli.main import cli
from cnn_cli.learn.guide import ALIASES, TOPICS, docs_section, guide_text, sections
from cnn_cli.learn.guide.render import (
    ANSI,
    BOLD,
    CODE,
    NOT_BOLD,
    NOT_CODE,
    NOT_UNDERLINE,
    UNDERLINE,
    anchor_topics,
    display_width,
    render_markdown,
    slug,
)
from tests.support import REPO_ROOT
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli


@pytest.mark.parametrize("topic", [*TOPICS, *ALIASES])
def test_every_topic_finds_its_section(topic):
    text = docs_section(topic)
    heading = TOPICS[ALIASES.get(topic, topic)]
    assert text.splitlines()[0].lstrip("#").strip().startswith(heading)
    assert len(text.splitlines()) > 3


def test_docs_conv2d_prints_the_conv_section_and_stops_at_the_next():
    outcome = invoke_cli(["docs", "conv2d"])
    assert outcome.code == 0
    assert outcome.stdout.startswith("### 2.1 Conv2D")
    assert "#### `∂L/∂x`: the input gradient" in outcome.stdout
    assert "### 2.2 Padding" not in outcome.stdout


def test_section_numbers_and_heading_words_work():
    assert docs_section("2.12").startswith("### 2.12 Softmax cross-entropy")
    assert docs_section("bias gradient").startswith("#### `∂L/∂bias`")


def test_unknown_topic_is_one_line_and_exit_2():
    error_line(invoke_cli(["docs", "no-such-topic"]), EXIT_BAD_INPUT, "no-such-topic", "conv2d")


def test_docs_lists_topics():
    outcome = invoke_cli(["docs"])
    assert outcome.code == 0
    assert all(topic in outcome.stdout for topic in TOPICS)


def test_one_copy_of_the_guide():
    """docs/backprop.md only points into the package, so the two cannot drift apart."""
    pointer = (REPO_ROOT / "docs" / "backprop.md").read_text(encoding="utf-8")
    assert "cnn_cli/learn/guide/backprop.md" in pointer
    assert len(pointer.splitlines()) < 15
    assert guide_text() == (REPO_ROOT / "cnn_cli" / "learn" / "guide" / "backprop.md").read_text(encoding="utf-8")


def test_the_guide_fixes_of_issue_12():
    text = guide_text()
    import re

    for path in re.findall(r"`(tests/[\w/]+\.py)`", text):
        assert (REPO_ROOT / path).is_file(), path
    assert "--config configs/mnist.yaml" not in text
    assert "$ cnn gradcheck --config mnist" in text
    assert "ε = 1e−6" not in text and "eps = 1e-6" not in text
    errata = docs_section("notes-errata")
    for fragment in ("a2(1 − a2)", "(64*10*10 10 1)", "eq. (18)", "one less than", "I ⋆ K = I ⋆ rot180(K)", "size of the output", "0.29"):
        assert fragment in errata, fragment


def test_relative_links_in_the_guide_point_at_files_that_exist():
    guide_dir = REPO_ROOT / "cnn_cli" / "learn" / "guide"
    import re

    for target in re.findall(r"\]\((\.\./[^)#]+)", guide_text()):
        assert (guide_dir / target).resolve().exists(), target


def test_every_command_help_names_cnn_docs():
    names = [name for name, command in cli.commands.items() if not hasattr(command, "commands")]
    assert {"train", "eval", "predict", "summary", "gradcheck", "explain", "viz", "plot"} <= set(names)
    for name in [None, *names]:
        outcome = invoke_cli([name, "--help"] if name else ["--help"])
        assert outcome.code == 0
        assert "cnn docs" in " ".join(outcome.stdout.split()), name


def test_the_wheel_carries_the_guide(tmp_path):
    """Build a wheel from a copy of the sources (so no build/ folder lands in the checkout)."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(REPO_ROOT / "cnn_cli", source / "cnn_cli", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path / "wheel"),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "wheel").glob("cnn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "cnn_cli/learn/guide/backprop.md" in names
    assert "cnn_cli/learn/exercises/skeletons/conv2d.py" in names and "cnn_cli/learn/exercises/skeletons/net004.py" in names
    assert "cnn_cli/learn/guide/__init__.py" in names and "cnn_cli/learn/bugzoo/__init__.py" in names

    # Installed into a fresh venv (the dependencies borrowed from this interpreter's site-packages)
    # and run from a folder outside the checkout, the docs and the examples still work.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    zipfile.ZipFile(wheel).extractall(purelib)  # a pure-Python wheel installs by unpacking
    dependencies = [path for path in sys.path if path.endswith("site-packages")]
    (Path(purelib) / "borrowed_dependencies.pth").write_text("\n".join(dependencies) + "\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "CNN_DEBUG")}

    def installed(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120, check=False)

    where = installed("-c", "import cnn_cli; print(cnn_cli.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv)
    docs = installed("-m", "cnn_cli", "docs", "conv2d")
    assert docs.returncode == 0, docs.stderr
    assert docs.stdout.startswith("### 2.1 Conv2D")
    listed = installed("-m", "cnn_cli", "explain", "--list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[0] == "cross-correlation"
    worked = installed("-m", "cnn_cli", "explain", "seed004-net")
    assert worked.returncode == 0 and "all agree" in worked.stdout
    started = installed("-m", "cnn_cli", "exercise", "start", "relu")
    assert started.returncode == 0, started.stderr
    checked = installed("-m", "cnn_cli", "exercise", "check", "relu_exercise.py")
    assert checked.returncode == 1 and "not written yet" in checked.stdout, checked.stdout + checked.stderr


def test_sections_ignore_hash_lines_inside_code_blocks():
    found = sections("# A\ntext\n```\n# not a heading\n```\n## B\nmore\n")
    assert [s.title for s in found] == ["A", "B"]
    assert "# not a heading" in found[0].text


def test_docs_path_helper_is_not_an_absolute_machine_path():
    assert not Path(TOPICS["conv2d"]).is_absolute()


# ---------------------------------------------------------------- cnn docs on a terminal: the Markdown rendered

SAMPLE = """### 2.9 Flatten

Some `inline code` and **bold** text; see [Dense](#210-dense), [the notes' errata](#the-notes-own-errata),
[`cnn_cli/nn/conv.py`](../../nn/conv.py)`::conv2d_forward` and [PyTorch](https://pytorch.org).

- a bullet with `code`
  and its second line

| what | shape |
|---|---|
| `x` | `(N, C, H, W)` |
| ∂L/∂weight | `(C_out, C_in/groups, kH, kW)` |

```
y = x @ W.T   # kept exactly
```

#### Forward
"""


def test_render_headings_code_tables_bullets_and_links_in_colour():
    out = render_markdown(SAMPLE, color=True)
    lines = out.splitlines()
    assert lines[0] == f"{BOLD}{UNDERLINE}2.9 Flatten{NOT_UNDERLINE}{NOT_BOLD}"
    assert f"{CODE}inline code{NOT_CODE}" in out and f"{BOLD}bold{NOT_BOLD}" in out
    assert f"Dense ({CODE}cnn docs dense{NOT_CODE})" in out
    assert f"the notes' errata ({CODE}cnn docs notes-errata{NOT_CODE})" in out
    assert f"{CODE}cnn_cli/nn/conv.py::conv2d_forward{NOT_CODE}" in out  # a file link keeps only its text
    assert "PyTorch (https://pytorch.org)" in out
    assert "](" not in out and "```" not in out and "**" not in out
    assert f"• a bullet with {CODE}code{NOT_CODE}" in out and "  and its second line" in out
    assert f"    {CODE}y = x @ W.T   # kept exactly{NOT_CODE}" in lines
    assert lines[-1] == f"{BOLD}Forward{NOT_BOLD}"


def test_render_aligns_table_columns_by_what_the_terminal_shows():
    for color in (True, False):
        lines = render_markdown(SAMPLE, color=color).splitlines()
        table = [ANSI.sub("", line) for line in lines if "shape" in line or "(N, C, H, W)" in line or "kH, kW" in line]
        rule = next(ANSI.sub("", line) for line in lines if line.startswith("─"))
        assert len(table) == 3
        # every row's second cell starts two columns after the first column's rule
        first = len(rule.split("  ")[0])
        assert first == display_width("∂L/∂weight")
        for row in table:
            assert row[first : first + 2] == "  " and row[first + 2] != " ", row
        assert table[2].split("  ")[0] == "∂L/∂weight" and display_width("∂L/∂weight") == 10


def test_render_without_colour_writes_no_escape_code():
    out = render_markdown(SAMPLE, color=False)
    assert "\x1b" not in out
    assert out.splitlines()[:2] == ["2.9 Flatten", "-----------"]
    assert "`inline code`" in out and "Dense (`cnn docs dense`)" in out


def test_the_whole_guide_renders_and_every_link_into_it_names_a_topic():
    text = guide_text()
    anchors = anchor_topics()
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, f"#{target} is no heading of the guide"
        assert anchors[target] in TOPICS
    for color in (True, False):
        out = render_markdown(text, color=color)
        assert "](" not in out and "```" not in out
        assert not any(f"{'#' * section.level} {section.title}" in out for section in sections())


def test_slugs_are_githubs():
    assert slug("2.10 Dense") == "210-dense"
    assert slug("4. Worked trace: notes 000's MNIST network") == "4-worked-trace-notes-000s-mnist-network"
    assert slug("`∂L/∂x`: the input gradient") == "lx-the-input-gradient"
    assert anchor_topics()["cross-correlation-not-convolution"] == "conv2d"  # a subsection: its section's topic


def test_docs_on_a_terminal_renders_and_piped_prints_the_markdown(monkeypatch):
    piped = invoke_cli(["docs", "relu"])
    assert piped.code == 0 and piped.stdout.startswith("### 2.5 ReLU") and "\x1b" not in piped.stdout
    assert piped.stdout == docs_section("relu")
    monkeypatch.setattr(explain_cli, "_stdout_is_terminal", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    shown = invoke_cli(["docs", "relu"])
    assert shown.code == 0
    assert shown.stdout.startswith(f"{BOLD}{UNDERLINE}2.5 ReLU") and "### " not in shown.stdout
    assert f"({CODE}cnn docs errata{NOT_CODE})" in shown.stdout  # [section 6](#6-where-...)
    monkeypatch.setenv("NO_COLOR", "1")
    plain = invoke_cli(["docs", "relu"])
    assert "\x1b" not in plain.stdout and plain.stdout.startswith("2.5 ReLU\n--------\n")
