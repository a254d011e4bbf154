"""Fixtures for the ``cnn serve`` tests: a real trained run on real MNIST, copied into a fresh runs folder per test."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cnn_cli.config.load import load_config
from cnn_cli.runs.folders import RunPaths
from cnn_cli.training.train import train
from tests.serve.browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS

NEEDS_SERVE_EXTRA = "cnn serve needs its extra (Flask, threadpoolctl): pip install '.[serve]'"

TRAINED_RUN = "smoke-trained"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, mnist_data_dir: Path) -> RunPaths:
    """A completed ``smoke`` run on 10,000 real MNIST images, 2 epochs (about 95% test accuracy, a second or two)."""
    root = tmp_path_factory.mktemp("trained") / TRAINED_RUN
    config = load_config("smoke", ["data.limit=10000", "train.epochs=2", f"data.data_dir={mnist_data_dir}"])
    result = train(config, run_dir=root, command_line=["cnn", "train", "-c", "smoke"], log=lambda line: None)
    assert result.status == "completed", result.message
    return result.run


@pytest.fixture
def runs_root(tmp_path: Path, trained_run: RunPaths) -> Path:
    """A fresh runs folder holding a copy of the trained run (tests may add, break or symlink runs in it)."""
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(trained_run.root, root / TRAINED_RUN)
    return root


def copy_run(runs_root: Path, name: str, status: str | None = None, started: str | None = None) -> RunPaths:
    """Copy the trained run under another name, optionally changing its status or start time in run.json."""
    paths = RunPaths(runs_root / name)
    shutil.copytree(runs_root / TRAINED_RUN, paths.root)
    info = json.loads(paths.run_info.read_text())
    info.update({k: v for k, v in (("status", status), ("started", started)) if v is not None})
    paths.run_info.write_text(json.dumps(info))
    return paths


@pytest.fixture
def client(runs_root: Path) -> Iterator:
    """A Flask test client for the app over ``runs_root``."""
    from cnn_cli.serve.app import create_app

    app = create_app(runs_root)
    app.testing = True
    with app.test_client() as test_client:
        yield test_client


# ---------------------------------------------------------------- the real-browser tests (tests/serve/browser.py)


@pytest.fixture(scope="module")
def playwright_session() -> Iterator:
    """One Playwright driver per test module (the sync API allows one at a time)."""
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        yield playwright


def launch_chromium(playwright, profile: Path, **options: Any):
    """Debian's Chromium, headless, with a fresh profile folder (no first-run, no background networking)."""
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900}, **options
    )
    context.set_default_timeout(WAIT_MS)
    return context


@pytest.fixture(scope="module")
def browser_context(playwright_session, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The browser the page tests use; it bypasses the pages' CSP, which forbids the eval Playwright's wait_for_function needs."""
    context = launch_chromium(playwright_session, tmp_path_factory.mktemp("chromium-profile"), device_scale_factor=1, bypass_csp=True)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def server(runs_root: Path) -> Iterator[str]:
    """``cnn serve`` over the test's runs folder, on 127.0.0.1 and a free port; yields its URL."""
    from cnn_cli.serve import Server

    served = Server(runs_root, None, "127.0.0.1", 0)
    served.start_thread()
    try:
        yield served.url
    finally:
        served.shutdown()


@pytest.fixture
def page(browser_context) -> Iterator:
    """A new page; the test fails if it logged a script error or a failed request."""
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))
    try:
        yield page
    finally:
        page.close()
    assert not errors, errors
