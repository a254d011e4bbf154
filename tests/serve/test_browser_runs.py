"""The runs pages in a real browser (Debian's Chromium through Playwright; see browser.py): layout, polling, names, liveness."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.serve.browser import canvas_colours, require_browser, save_screenshot
from tests.serve.conftest import NEEDS_SERVE_EXTRA, TRAINED_RUN, copy_run, launch_chromium
from tests.support.cli import cli_command, cli_environment

pytest.importorskip("flask", reason=NEEDS_SERVE_EXTRA)
pytest.importorskip("threadpoolctl", reason=NEEDS_SERVE_EXTRA)
require_browser()

PHONE = {"width": 390, "height": 844}
LONG_NAME = "mnist-wide-lr0.003-batch128-augmented-with-a-very-long-name-2026-01-01T12-00-00"
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture(scope="module")
def strict_context(playwright_session, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A Chromium that enforces the pages' Content Security Policy (the shared one bypasses it for eval)."""
    context = launch_chromium(playwright_session, tmp_path_factory.mktemp("chromium-strict"))
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    try:
        yield context
    finally:
        context.close()


def test_no_page_logs_a_console_error_under_the_csp(strict_context, server: str) -> None:
    """Defect 8: the draw page's inline style broke the CSP on every load; no page may log an error now."""
    page = strict_context.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda exc: messages.append(f"pageerror: {exc}"))
    try:
        for path, ready in (("", "#model option"), ("runs", f'tr[data-run="{TRAINED_RUN}"]'), (f"runs/{TRAINED_RUN}", ".fact .status")):
            page.goto(server + path)
            page.locator(ready).first.wait_for(state="attached")
            page.wait_for_timeout(1500)  # a poll or two
            assert page.evaluate("window.__cspViolations") == [], path
            assert page.evaluate("getComputedStyle(document.querySelector('main')).display") == "grid"  # the stylesheet applies
        assert page.evaluate("getComputedStyle(document.getElementById('loss-chart')).height") == "260px"
        page.goto(server)
        page.locator("#model option").first.wait_for(state="attached")
        assert page.evaluate("getComputedStyle(document.getElementById('gradient-norms')).height") == "200px"
    finally:
        page.close()
    assert messages == []


@pytest.mark.parametrize("path", ["runs", f"runs/{TRAINED_RUN}", f"runs/{LONG_NAME}", f"runs?run={TRAINED_RUN}&run={LONG_NAME}"])
def test_a_390px_screen_has_no_sideways_scroll(server: str, page, runs_root: Path, tmp_path: Path, path: str) -> None:
    copy_run(runs_root, LONG_NAME)
    page.set_viewport_size(PHONE)
    page.goto(server + path)
    if path.startswith("runs/"):
        page.wait_for_function("document.getElementById('acc-chart').dataset.points === '2'")
        page.wait_for_function("document.getElementById('evaluation-note').textContent !== ''")
    else:
        page.locator(f'tr[data-run="{TRAINED_RUN}"]').wait_for()
    if "run=" in path:
        page.wait_for_function("document.getElementById('compare-config').rows.length > 0")
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], widths
    too_wide = page.evaluate(
        """[...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
            .filter(e => !e.closest('.scroll, pre'))
            .map(e => e.tagName + '#' + e.id + '.' + e.className)"""
    )
    assert too_wide == []
    save_screenshot(page, page, f"phone-{path.split('?')[0].replace('/', '-')}.png", tmp_path)


def test_polls_never_overlap_when_the_server_is_slow(server: str, page, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 7: the runs page polled with setInterval, so slow answers piled up; now the next poll waits for the answer."""
    from cnn_cli.serve import records
    from cnn_cli.serve.index import RunsIndex

    lock = threading.Lock()
    calls = {"now": 0, "most": 0, "total": 0}
    slow_listing, slow_stamp = RunsIndex.listing, records.file_stamp

    def counted(function, delay_s: float):
        def slow(*args, **kwargs):
            with lock:
                calls["now"] += 1
                calls["total"] += 1
                calls["most"] = max(calls["most"], calls["now"])
            try:
                time.sleep(delay_s)  # slower than the page's poll interval
                return function(*args, **kwargs)
            finally:
                with lock:
                    calls["now"] -= 1

        return slow

    monkeypatch.setattr(RunsIndex, "listing", counted(slow_listing, 2.5))  # the list page polls every 2 s
    page.goto(server + "runs")
    page.wait_for_timeout(10_000)  # setInterval would have started 5 polls, up to 2 at once; one after another: 2 or 3
    assert calls["total"] >= 2 and calls["most"] == 1, calls
    monkeypatch.setattr(RunsIndex, "listing", slow_listing)
    settle(calls)
    calls.update(most=0, total=0)
    monkeypatch.setattr(records, "file_stamp", counted(slow_stamp, 1.0))  # a run page polls every 0.7 s
    page.goto(server + f"runs/{TRAINED_RUN}")
    page.wait_for_timeout(5000)
    assert calls["total"] >= 3 and calls["most"] == 1, calls
    monkeypatch.setattr(records, "file_stamp", slow_stamp)
    settle(calls)


def settle(calls: dict[str, int]) -> None:
    """Wait until no slowed request is in flight, so that leaving the page aborts none."""
    deadline = time.monotonic() + 10
    while calls["now"] and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("name", ["my run", "über lauf ①", "実験"])
def test_runs_with_spaces_and_non_ascii_names_open(server: str, page, runs_root: Path, name: str) -> None:
    """Defect 9: such folders were missing from the list and their pages 404."""
    copy_run(runs_root, name, started="2999-01-01T00:00:00")
    page.goto(server + "runs")
    row = page.locator(f'tr[data-run="{name}"]')
    row.wait_for()
    row.locator("a").click()
    page.wait_for_url(f"**/runs/{quote(name)}")
    page.wait_for_function("document.getElementById('acc-chart').dataset.points === '2'")
    assert page.locator("#run-name").inner_text() == name
    assert int(page.locator("#step-chart").get_attribute("data-points")) >= 2


def test_a_killed_training_shows_as_stopped(server: str, page, runs_root: Path, mnist_data_dir: Path) -> None:
    """Defect 10: a `kill -9`ed run showed running forever. The list and the run page say stopped within a poll or two."""
    run_dir = runs_root / "killed"
    overrides = [f"data.data_dir={mnist_data_dir}", "data.limit=6000", "train.epochs=500"]
    command = cli_command(["train", "-c", "smoke", "--run-dir", run_dir, "-q", *(a for o in overrides for a in ("--set", o))])
    training = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_environment())
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "run.json").is_file() or "pid" not in json.loads((run_dir / "run.json").read_text() or "{}"):
            assert training.poll() is None and time.monotonic() < deadline, "the training never wrote its run.json"
            time.sleep(0.05)
        page.goto(server + "runs")
        status = page.locator('tr[data-run="killed"] .status')
        status.wait_for()
        page.wait_for_function("document.querySelector('tr[data-run=\"killed\"] .status').textContent === 'running'")
        training.send_signal(signal.SIGKILL)
        training.wait(timeout=10)
        page.wait_for_function("document.querySelector('tr[data-run=\"killed\"] .status').textContent === 'stopped'", timeout=10_000)
        assert json.loads((run_dir / "run.json").read_text())["status"] == "running"  # the file still says so
        page.goto(server + "runs/killed")
        page.wait_for_function("document.querySelector('.fact .status').textContent === 'stopped'")
        assert "process" in page.locator("#message").inner_text() and "gone" in page.locator("#message").inner_text()
    finally:
        if training.poll() is None:
            training.kill()
            training.wait(timeout=10)


def test_a_running_run_without_gradients_yet_says_so(server: str, page, runs_root: Path) -> None:
    run = copy_run(runs_root, "early", status="running")
    info = json.loads(run.run_info.read_text())
    info.update(pid=os.getpid(), host=socket.gethostname())
    info.pop("pid_start", None)
    run.run_info.write_text(json.dumps(info))
    run.gradients.unlink()
    page.goto(server + "runs/early")
    page.wait_for_function("document.querySelector('.fact .status').textContent === 'running'")
    note = page.locator("#gradient-note").inner_text()
    assert "no gradients yet" in note.lower() and "without gradient logging" not in note


def test_overlay_and_smoothing(server: str, page, runs_root: Path) -> None:
    other = copy_run(runs_root, "longer")
    other.config.write_text(other.config.read_text().replace("epochs: 2", "epochs: 4"))
    page.goto(server + "runs")
    for name in (TRAINED_RUN, "longer"):
        page.locator(f'tr[data-run="{name}"] input[type=checkbox]').check()
    page.wait_for_function("document.getElementById('compare-config').rows.length === 2")
    assert page.locator("#compare-config").inner_text().split() == ["key", TRAINED_RUN, "longer", "train.epochs", "2", "4"]
    assert "run=longer" in page.url  # the overlay can be linked
    assert canvas_colours(page, "#compare-steps")[0] > 3 and canvas_colours(page, "#compare-val")[0] > 3

    page.goto(server + f"runs/{TRAINED_RUN}")
    page.wait_for_function("Number(document.getElementById('step-chart').dataset.points) >= 2")
    before = page.eval_on_selector("#step-chart", "c => c.toDataURL()")
    page.locator("#smoothing").fill("0.95")
    assert page.locator("#smoothing-value").inner_text() == "0.95"
    smoothed = page.eval_on_selector("#step-chart", "c => c.toDataURL()")
    assert smoothed != before
    page.locator("#step-log").check()
    assert page.eval_on_selector("#step-chart", "c => c.toDataURL()") != smoothed


def test_the_metrics_download_link(server: str, browser_context, runs_root: Path, tmp_path: Path) -> None:
    page = browser_context.new_page()  # not the checked page: Chromium reports a download's request as aborted
    try:
        page.goto(server + f"runs/{TRAINED_RUN}")
        page.wait_for_function("document.getElementById('acc-chart').dataset.points === '2'")
        with page.expect_download() as download:
            page.click("#metrics-csv")
        saved = tmp_path / "metrics.csv"
        download.value.save_as(saved)
    finally:
        page.close()
    assert saved.read_bytes() == (runs_root / TRAINED_RUN / "metrics.csv").read_bytes()
    assert download.value.suggested_filename == f"{TRAINED_RUN}-metrics.csv"
