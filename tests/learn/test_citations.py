"""Self-contained references: every citation of the lecture notes a user can read comes with the guide section
that restates it (``notes 000 §2.7, `cnn docs maxpool2d```), and every ``cnn docs TOPIC`` named anywhere exists.

The notes do not ship with ``cnn``; the guide (``cnn docs``) restates every derivation the code and ``cnn explain``
cite. "A user can read" means: docstrings and other strings of the package (help texts, error messages, the
``--list`` summaries, figure titles), the comments and descriptions of the shipped configs, and everything
``cnn explain`` prints. Code comments are for the maintainers and are not checked.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from cnn_cli.learn.bugzoo import MUTATIONS
from cnn_cli.learn.guide import ALIASES, TOPICS, docs_section, guide_text
from tests.support import REPO_ROOT
from tests.support.cli import invoke_cli

PACKAGE = REPO_ROOT / "cnn_cli"
CITATION = re.compile(r"\b[Nn]otes (0\d\d)\b")
DOCS_TOPIC = re.compile(r"cnn docs ([A-Za-z0-9_][A-Za-z0-9_.-]*)")
# The notes' own file names: three digits, an underscore and a 16-digit hex id.
NOTES_FILE = re.compile(r"\b0\d\d_[0-9a-f]{16}\b")
# Calls whose string arguments are lines of a ``cnn explain`` report: checked in its printed output instead.
REPORT_CALLS = {"say", "check", "check_sum", "erratum", "matrix"}


def cited_topics(text: str) -> list[str]:
    return [topic.rstrip(".") for topic in DOCS_TOPIC.findall(text) if topic != "TOPIC"]


def units(text: str) -> list[str]:
    """Paragraphs, and each bullet of a list on its own: a citation and its topic must share one."""
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        found.extend(part for part in re.split(r"\n(?=\s*- )", paragraph) if part.strip())
    return found


def string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string in a module, f-strings with their fields as {…}, minus report lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(value) for value in node.values)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in REPORT_CALLS:
            skip.update(id(sub) for arg in [*node.args, *(k.value for k in node.keywords)] for sub in ast.walk(arg))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{…}" for v in node.values)
            found.append((node.lineno, text))
    return found


def config_texts(path: Path) -> list[tuple[int, str]]:
    """A shipped config's comment blocks (consecutive comment lines), inline comments and description."""
    found, block, start = [], [], 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("#"):
            block, start = block + [line.lstrip("# ")], start or number
            continue
        if block:
            found.append((start, "\n".join(block)))
            block, start = [], 0
        if " # " in line:
            found.append((number, line.split(" # ", 1)[1]))
        if line.startswith("description:"):
            found.append((number, line))
    if block:
        found.append((start, "\n".join(block)))
    return found


@functools.cache
def explain_reports() -> dict[str, list[str]]:
    """``cnn explain`` (every example), split into each example's printed lines."""
    outcome = invoke_cli(["explain"], timeout=120)
    assert outcome.code == 0, outcome.output
    reports: dict[str, list[str]] = {}
    current = ""
    for line in outcome.stdout.splitlines():
        header = re.match(r"^== (\S+) =+$", line)
        if header:
            current = header.group(1)
            reports[current] = []
        elif current:
            reports[current].append(line)
    return reports


def user_facing_texts() -> list[tuple[str, str]]:
    """(where, text) of every string the package shows a user, and the shipped configs' comments."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, text in string_literals(path):
            if path.name == "__init__.py" and path.parent.name == "guide" and text in TOPICS.values():
                continue  # a heading in the topic table, printed beside its own topic
            found.append((f"{path.relative_to(REPO_ROOT)}:{line}", text))
    for path in sorted((PACKAGE / "configs").glob("*.yaml")):
        found.extend((f"{path.relative_to(REPO_ROOT)}:{line}", text) for line, text in config_texts(path))
    return found


def test_every_notes_citation_in_the_package_names_its_guide_section():
    citing = [unit for _, text in user_facing_texts() for unit in units(text) if CITATION.search(unit)]
    assert len(citing) > 50  # the scan sees the docstrings, help texts and configs
    missing = [
        f"{where}: {unit.strip()[:100]!r}"
        for where, text in user_facing_texts()
        for unit in units(text)
        if CITATION.search(unit) and not cited_topics(unit)
    ]
    assert not missing, "a citation of the notes without its `cnn docs TOPIC`:\n" + "\n".join(missing)


def test_every_notes_citation_cnn_explain_prints_names_its_guide_section():
    """Each line that cites the notes names its topic, except a ✓/✗ line or a later line of the same example
    citing notes the example already tied to a topic (its source column says where the expected value is from)."""
    missing = []
    for name, lines in explain_reports().items():
        introduced: set[str] = set()
        for line in lines:
            cited = set(CITATION.findall(line))
            if not cited:
                continue
            if cited_topics(line):
                introduced |= cited
            elif not cited <= introduced or "note erratum" in line:
                missing.append(f"{name}: {line.strip()}")
    assert not missing, "\n".join(missing)
    listed = invoke_cli(["explain", "--list"], timeout=60).stdout.splitlines()
    assert all(cited_topics(line) for line in listed if CITATION.search(line)), listed


def test_every_cnn_docs_topic_named_anywhere_exists():
    named = {topic for _, text in user_facing_texts() for topic in cited_topics(text)}
    for path in [*PACKAGE.rglob("*.md"), *PACKAGE.rglob("*.py")]:  # comments too: a maintainer follows them as well
        named |= set(cited_topics(path.read_text(encoding="utf-8")))
    for lines in explain_reports().values():
        named |= {topic for line in lines for topic in cited_topics(line)}
    named |= {mutation.docs.split()[0] for mutation in MUTATIONS.values()}  # printed as "read: cnn docs <docs>"
    assert len(named) > 20
    for topic in sorted(named):
        assert topic in TOPICS or topic in ALIASES or re.fullmatch(r"\d+(\.\d+)*", topic), topic
        docs_section(topic)  # raises if the guide has no such section


def test_the_guide_restates_the_numbers_cnn_explain_takes_from_the_notes():
    """Every value a ✓ line credits to the notes is written in the guide too (spaces and minus signs aside)."""
    guide = guide_text().replace("−", "-").replace(" ", "")
    values = []
    for lines in explain_reports().values():
        for line in lines:
            credited = re.search(r"\s{3}notes 0\d\d[^:+]*: (.+)$", line)
            if credited:
                values.append(credited.group(1).replace("−", "-").replace(" ", ""))
    assert {"[[8,7],[4,5]]", "0.023", "0.000878", "0.00047", "-0.0147", "-0.001", "x[1,2]"} <= set(values)
    assert [value for value in values if value not in guide] == []


@pytest.mark.parametrize("topic", ["seesaw", "seed004", "initial-loss", "sigmoid", "maxpool2d"])
def test_the_sections_the_citations_lean_on_exist_and_say_something(topic):
    assert len(docs_section(topic).splitlines()) > 8


def test_the_notes_file_names_appear_nowhere_a_user_reads():
    places = [*PACKAGE.rglob("*"), REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*")]
    for path in places:
        if path.is_file() and path.suffix in {".py", ".md", ".yaml", ".ipynb", ".txt", ".html", ".js", ".css"}:
            assert not NOTES_FILE.search(path.read_text(encoding="utf-8")), path
