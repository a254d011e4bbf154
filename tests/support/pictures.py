"""Reading a picture's words back: the figures a drawing call made, and which of their texts run past the edges."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from cnn_cli.pictures import common


@contextlib.contextmanager
def captured_figures(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Figure]]:
    """Every figure drawn inside the block, in order, kept after it was saved (every picture is made by common._saved_figure)."""
    figures: list[Figure] = []
    original = common._saved_figure

    @contextlib.contextmanager
    def recording(*args: Any, **kwargs: Any) -> Iterator[Figure]:
        with original(*args, **kwargs) as fig:
            figures.append(fig)
            yield fig

    monkeypatch.setattr(common, "_saved_figure", recording)
    yield figures


def words(fig: Figure) -> list[Text]:
    """The figure's title, every panel's titles and axis labels, and the texts written on panels or the figure."""
    texts: list[Text] = [fig._suptitle] if fig._suptitle is not None else []  # type: ignore[attr-defined]
    texts.extend(fig.texts)
    for ax in fig.axes:
        texts.extend([ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts])
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def cut_texts(fig: Figure) -> list[str]:
    """The words that run past an edge of the saved figure (a pixel of slack)."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    width, height = fig.bbox.width, fig.bbox.height
    cut = []
    for text in words(fig):
        box = text.get_window_extent(renderer)
        if box.x0 < -1 or box.x1 > width + 1 or box.y0 < -1 or box.y1 > height + 1:
            cut.append(text.get_text())
    return cut


def title_text(fig: Figure) -> str:
    return fig._suptitle.get_text() if fig._suptitle is not None else ""  # type: ignore[attr-defined]
