"""The guide's Markdown, rendered for a terminal: what ``cnn docs TOPIC`` prints to a screen.

Headings come out bold (and underlined down to level 3), code blocks indented and
coloured, inline code coloured, tables aligned in columns, bullets as •, and every
link into the guide as the ``cnn docs TOPIC`` that prints its target (a link to a
file or a page keeps only its text). With ``color=False`` (``NO_COLOR``, or a dumb
terminal) the layout is the same and no escape code is written: headings are
underlined with ``=`` or ``-``, inline code keeps its backticks.

Piped or redirected, ``cnn docs`` prints the Markdown source as it is; the command
(``cnn_cli/cli/explain.py``) decides, this module only returns text.
"""

from __future__ import annotations

import re
import unicodedata

from cnn_cli.learn.guide import TOPICS, sections

BOLD, NOT_BOLD = "\x1b[1m", "\x1b[22m"
ITALIC, NOT_ITALIC = "\x1b[3m", "\x1b[23m"
UNDERLINE, NOT_UNDERLINE = "\x1b[4m", "\x1b[24m"
CODE, NOT_CODE = "\x1b[36m", "\x1b[39m"
DIM, NOT_DIM = "\x1b[2m", "\x1b[22m"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

HEADING = re.compile(r"^(#{1,6}) (.+)$")
BULLET = re.compile(r"^(\s*)[-*] (.*)$")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)(`[^`]+`)?")  # and a code span right after: [`a.py`](a.py)`::f`
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
EMPHASIS = re.compile(r"(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])")
TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
RULE_WIDTH = 72


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens ("2.10 Dense" -> "210-dense")."""
    plain = title.replace("`", "").lower()
    kept = "".join(ch for ch in plain if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def anchor_topics(text: str | None = None) -> dict[str, str]:
    """Every heading's anchor -> the ``cnn docs`` topic that prints it: its own topic, else that of the section around it."""
    found: dict[str, str] = {}
    enclosing: list[tuple[int, str | None]] = []  # (level, topic) of the headings above the current one
    for section in sections(text):
        own = next((topic for topic, heading in TOPICS.items() if section.title.startswith(heading)), None)
        enclosing = [(level, topic) for level, topic in enclosing if level < section.level]
        inherited = next((topic for _, topic in reversed(enclosing) if topic), None)
        enclosing.append((section.level, own))
        topic = own or inherited
        if topic is not None:
            found.setdefault(slug(section.title), topic)
    return found


def display_width(text: str) -> int:
    """Columns a terminal gives ``text``: escape codes take none, wide (East Asian) characters two, combining marks none."""
    width = 0
    for ch in ANSI.sub("", text):
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def render_markdown(text: str, color: bool = True) -> str:
    """The guide's Markdown ``text`` laid out for a terminal; ANSI styles when ``color``, plain text otherwise."""
    renderer = _Renderer(color, anchor_topics())
    return "\n".join(renderer.lines(text.splitlines())) + ("\n" if text.endswith("\n") else "")


class _Renderer:
    def __init__(self, color: bool, anchors: dict[str, str]) -> None:
        self.color = color
        self.anchors = anchors

    def style(self, text: str, on: str, off: str) -> str:
        return f"{on}{text}{off}" if self.color else text

    def lines(self, source: list[str]) -> list[str]:
        out: list[str] = []
        index = 0
        while index < len(source):
            line = source[index]
            if line.lstrip().startswith("```"):
                index = self._code_block(source, index, out)
                continue
            if line.startswith("|") and index + 1 < len(source) and TABLE_RULE.match(source[index + 1]):
                end = index + 2
                while end < len(source) and source[end].startswith("|"):
                    end += 1
                out.extend(self._table(source[index], source[index + 2 : end]))
                index = end
                continue
            out.extend(self._line(line))
            index += 1
        return out

    def _line(self, line: str) -> list[str]:
        heading = HEADING.match(line)
        if heading:
            return self._heading(len(heading.group(1)), heading.group(2))
        if line.strip() in ("---", "***"):
            return [self.style("─" * RULE_WIDTH, DIM, NOT_DIM)]
        bullet = BULLET.match(line)
        if bullet:
            return [f"{bullet.group(1)}• {self.inline(bullet.group(2))}"]
        return [self.inline(line)]

    def _heading(self, level: int, title: str) -> list[str]:
        plain = self.inline(title, code_marks=False)
        if not self.color:
            return [plain, ("=" if level <= 2 else "-") * display_width(plain)] if level <= 3 else [plain]
        if level <= 3:
            return [f"{BOLD}{UNDERLINE}{ANSI.sub('', plain)}{NOT_UNDERLINE}{NOT_BOLD}"]
        return [f"{BOLD}{ANSI.sub('', plain)}{NOT_BOLD}"]

    def _code_block(self, source: list[str], start: int, out: list[str]) -> int:
        """Indent and colour the lines between two fences (kept exactly as written); return the index after the block."""
        indent = source[start][: len(source[start]) - len(source[start].lstrip())]
        index = start + 1
        while index < len(source) and not source[index].lstrip().startswith("```"):
            out.append(indent + "    " + self.style(source[index][len(indent) :], CODE, NOT_CODE))
            index += 1
        return index + 1

    def _table(self, header: str, body: list[str]) -> list[str]:
        rows = [[self.inline(cell) for cell in _cells(header)]] + [[self.inline(cell) for cell in _cells(row)] for row in body]
        columns = max(len(row) for row in rows)
        rows = [row + [""] * (columns - len(row)) for row in rows]
        widths = [max(display_width(row[c]) for row in rows) for c in range(columns)]

        def line(cells: list[str]) -> str:
            return "  ".join(cell + " " * (width - display_width(cell)) for cell, width in zip(cells, widths, strict=True)).rstrip()

        head = [self.style(ANSI.sub("", cell), BOLD, NOT_BOLD) for cell in rows[0]]
        return [line(head), "  ".join("─" * width for width in widths), *(line(row) for row in rows[1:])]

    def inline(self, text: str, code_marks: bool = True) -> str:
        """Links, code spans, **strong** and *emphasis* of one line."""
        text = LINK.sub(self._link, text)
        parts = []
        position = 0
        for span in CODE_SPAN.finditer(text):
            parts.append(self._emphasis(text[position : span.start()]))
            code = span.group(2).strip() if span.group(1) != "`" else span.group(2)
            if self.color:
                parts.append(f"{CODE}{code}{NOT_CODE}")
            else:
                parts.append(f"`{code}`" if code_marks else code)
            position = span.end()
        parts.append(self._emphasis(text[position:]))
        return "".join(parts)

    def _emphasis(self, text: str) -> str:
        text = STRONG.sub(lambda m: self.style(m.group(1), BOLD, NOT_BOLD), text)
        return EMPHASIS.sub(lambda m: self.style(m.group(1), ITALIC, NOT_ITALIC), text)

    def _link(self, match: re.Match[str]) -> str:
        label, target, code_after = match.group(1), match.group(2), match.group(3) or ""
        if code_after and label.startswith("`") and label.endswith("`"):
            label, code_after = label[:-1] + code_after[1:], ""  # one code span: `cnn_cli/nn/pool.py::maxpool2d_forward`
        label += code_after
        if target.startswith("#"):
            topic = self.anchors.get(target[1:])
            return f"{label} (`cnn docs {topic}`)" if topic else label
        if target.startswith(("http://", "https://")):
            return f"{label} ({target})"
        return label


def _cells(row: str) -> list[str]:
    """The cells of a table row, split at the | that are not inside a code span."""
    body = row.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") else body
    cells: list[str] = []
    current: list[str] = []
    in_code = False
    for ch in body:
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    cells.append("".join(current).strip())
    return cells
