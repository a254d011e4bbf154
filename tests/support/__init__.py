"""Helpers shared by the tests: running ``cnn``, synthetic IDX data, reference implementations, gradient checks."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
