"""docs/tutorial.ipynb runs end to end, and it is the notebook of docs/tutorial.py (its jupytext source)."""

from __future__ import annotations

import time

import nbformat
import pytest
from nbclient import NotebookClient

from tests.support import REPO_ROOT
from tests.support.cli import invoke_cli

NOTEBOOK = REPO_ROOT / "docs" / "tutorial.ipynb"
SOURCE = REPO_ROOT / "docs" / "tutorial.py"


def code_cells(notebook: nbformat.NotebookNode) -> list[str]:
    return [cell.source.strip() for cell in notebook.cells if cell.cell_type == "code"]


def test_the_notebook_matches_its_source_script():
    jupytext = pytest.importorskip("jupytext")
    from_script = jupytext.read(SOURCE)
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert code_cells(committed) == code_cells(from_script), "run: jupytext --to ipynb docs/tutorial.py, then re-execute it"
    assert [c.source.strip() for c in committed.cells if c.cell_type == "markdown"] == [
        c.source.strip() for c in from_script.cells if c.cell_type == "markdown"
    ]


def test_the_tutorial_runs_end_to_end():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:  # run from scratch, not from the stored outputs
        if cell.cell_type == "code":
            cell.outputs = []
    start = time.perf_counter()
    # Every check in the notebook is an assert: a value that differs from the notes raises CellExecutionError here.
    NotebookClient(notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(REPO_ROOT)}}).execute()
    elapsed = time.perf_counter() - start
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)
    assert "5/5 passed" in printed and "3 FAILED" in printed  # the intact library, then the broken ReLU
    assert "failed: ['conv1.weight', 'conv1.bias', 'input']" in printed
    # Notes 004's net is the one `cnn explain seed004-net` works through: the same parameters, input and A2.
    explained = invoke_cli(["explain", "seed004-net"]).stdout
    a2 = float(explained.split("A2 = σ(Z2) = ")[1].split(",")[0])
    assert f"A2 = {a2:.4f}, L = " in printed
    assert elapsed < 20, f"the tutorial took {elapsed:.1f} s"
