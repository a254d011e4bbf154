"""The draw page in a real browser (Debian's Chromium through Playwright; see browser.py): legends and hover values,
the click-a-pixel arithmetic against NumPy, every layer, defects 4–6 of issue 22, and a 390 px screen.

The input is an uploaded PNG (the 7 of tests/serve/test_api.py), so the test knows it exactly and computes the
network's numbers itself in NumPy (tests/serve/test_pixel_api.py's ``direct``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.serve.browser import canvas_colours, require_browser, save_screenshot
from tests.serve.conftest import NEEDS_SERVE_EXTRA, TRAINED_RUN, copy_run

pytest.importorskip("flask", reason=NEEDS_SERVE_EXTRA)
pytest.importorskip("threadpoolctl", reason=NEEDS_SERVE_EXTRA)
require_browser()

from cnn_cli.serve import Server  # noqa: E402
from tests.serve.test_api import seven_png  # noqa: E402
from tests.serve.test_pixel_api import direct  # noqa: E402

PHONE = {"width": 390, "height": 844}
IDLE = "window.cnnStats.updates.length > 0 && window.cnnIdle()"


@pytest.fixture
def seven(tmp_path: Path) -> Path:
    path = tmp_path / "seven.png"
    path.write_bytes(seven_png())
    return path


def open_with_upload(page, url: str, image: Path) -> None:
    page.goto(url)
    page.wait_for_function("document.getElementById('model').options.length > 0")
    page.set_input_files("#upload", str(image))
    page.wait_for_function(IDLE)


def number(text: str) -> float:
    """A number as the page writes it (a real minus sign)."""
    return float(text.replace("−", "-"))


def hover_pixel(page, selector: str, channel: int, y: int, x: int) -> None:
    """Move the mouse over pixel (y, x) of panel ``channel`` of the grid canvas ``selector`` (its layout from maps.js)."""
    page.locator(selector).first.scroll_into_view_if_needed()
    where = page.eval_on_selector(
        selector,
        """(c, [channel, y, x]) => {
            const g = c.mapGrid, [, h, w] = g.shape, r = c.getBoundingClientRect();
            const px = (channel % g.cols) * (w * g.zoom + g.gap) + (x + 0.5) * g.zoom;
            const py = Math.floor(channel / g.cols) * (h * g.zoom + g.gap) + (y + 0.5) * g.zoom;
            return [r.left + px * r.width / c.width, r.top + py * r.height / c.height];
        }""",
        [channel, y, x],
    )
    page.mouse.move(*where)


def test_legends_and_hover_values_are_the_networks_numbers(server: str, page, runs_root: Path, seven: Path, tmp_path: Path) -> None:
    d = direct(runs_root, seven_png(), class_index=7)
    open_with_upload(page, server, seven)
    assert page.locator("#prediction").inner_text() == "7"
    figures = page.locator("#layers-forward figure")
    assert figures.count() == 6  # conv1, relu1 and its mask, conv2, relu2 and its mask
    assert page.locator("#layers-forward .map-legend").count() == 6
    # One scale per layer: the legend's ends are ±max|z| of the layer.
    conv1 = page.locator("#layers-forward figure").filter(has=page.locator('canvas.feature-map[data-layer="conv1"]'))
    assert number(conv1.locator(".legend-high").inner_text()) == pytest.approx(np.abs(d.z1).max(), rel=1e-3)
    assert number(conv1.locator(".legend-low").inner_text()) == pytest.approx(-np.abs(d.z1).max(), rel=1e-3)
    # Hover: layer, channel, position and the value.
    hover_pixel(page, 'canvas.feature-map[data-layer="conv1"]', 5, 6, 7)
    readout = page.locator("#readout").inner_text()
    assert readout.startswith("conv1 · channel 5 · y 6, x 7 · "), readout
    assert number(readout.rsplit(" · ", 1)[1]) == pytest.approx(d.z1[5, 6, 7], rel=1e-3, abs=1e-6)
    assert page.locator("#hover").is_visible()
    # One scale per map: the legend follows the hovered map.
    page.select_option("#scale", "map")
    hover_pixel(page, 'canvas.feature-map[data-layer="conv1"]', 5, 0, 0)
    assert number(conv1.locator(".legend-high").inner_text()) == pytest.approx(np.abs(d.z1[5]).max(), rel=1e-3)
    assert "channel 5" in conv1.locator(".legend-note").inner_text()
    # Saliency: a legend, a hover value and the overlay on the input.
    assert page.locator("#saliency-legend .legend-high").inner_text() != ""
    plain = page.eval_on_selector("#saliency", "c => c.toDataURL()")
    page.check("#overlay")
    assert page.locator("#saliency").get_attribute("data-overlay") == "true"
    assert page.eval_on_selector("#saliency", "c => c.toDataURL()") != plain
    hover_pixel(page, "#saliency", 0, 10, 14)
    assert page.locator("#readout").inner_text().startswith("saliency ∂score/∂pixel · input · y 10, x 14 · ")
    # Backward: the per-layer sensitivity maps share one log scale, with its legend.
    ranges = page.eval_on_selector_all("canvas.grad-map", "cs => cs.map(c => c.mapGrid.logRange.join(','))")
    assert len(ranges) == 4 and len(set(ranges)) == 1
    assert page.locator("#grad-legend .legend-high").inner_text().startswith("1e")
    # The logits, labelled by class, are the network's.
    logits = page.eval_on_selector_all("#logits tr[data-class] td[data-value]", "cells => cells.map(c => +c.dataset.value)")
    np.testing.assert_allclose(logits, d.logits, rtol=1e-4, atol=1e-4)
    assert page.locator("#logits tr[data-class='7'] td").first.text_content() == "7"  # inside a closed <details>
    # Weights and weight gradients of each conv layer, hover naming w[o, c].
    assert page.locator("#weights canvas.map-grid").count() == 4
    hover_pixel(page, 'canvas.weights[data-layer="conv2"]', 9, 1, 2)
    assert page.locator("#readout").inner_text().startswith("conv2.weight · w[1, 1] · y 1, x 2 · ")
    assert number(page.locator("#readout").inner_text().rsplit(" · ", 1)[1]) == pytest.approx(
        d.params["conv2.weight"][1, 1, 1, 2], rel=1e-3
    )
    page.uncheck("#overlay")
    page.select_option("#scale", "layer")
    save_screenshot(page, page, "serve-drawpad.png", tmp_path)
    # Click enlarges any map (here a kernel): its own legend; no arithmetic for a weight.
    hover_pixel(page, 'canvas.weights[data-layer="conv2"]', 9, 1, 2)
    page.mouse.down()
    page.mouse.up()
    page.wait_for_function("!document.getElementById('inspector-card').hidden")
    assert page.locator("#enlarged-caption").inner_text().startswith("conv2.weight · w[1, 1] · y 1, x 2 · ")
    assert number(page.locator("#enlarged-legend .legend-high").inner_text()) == pytest.approx(
        np.abs(d.params["conv2.weight"][1, 1]).max(), rel=1e-3
    )
    assert page.locator("#field").is_hidden() and page.locator("#arith-z").count() == 0


def test_a_clicked_pixel_shows_its_arithmetic_equal_to_numpy(server: str, page, runs_root: Path, seven: Path, tmp_path: Path) -> None:
    d = direct(runs_root, seven_png(), class_index=7)
    open_with_upload(page, server, seven)
    # The most active interior pixel of conv2: its ReLU passes it, so ∂/∂z is not zero.
    channel, y, x = (int(v) for v in np.unravel_index(np.argmax(d.z2[:, 1:6, 1:6]), (16, 5, 5)))
    y, x = y + 1, x + 1
    assert d.z2[channel, y, x] > 0 and d.grad_z2[channel, y, x] != 0
    hover_pixel(page, 'canvas.feature-map[data-layer="relu2"]', channel, y, x)  # a ReLU's pixel: its conv's sum, then the ReLU
    page.mouse.down()
    page.mouse.up()
    page.wait_for_function("document.getElementById('arith-z') !== null && window.cnnIdle()")
    assert page.locator("#inspector-title").inner_text() == f"conv2[{channel}] at y {y}, x {x}"
    values = page.eval_on_selector_all(".channel-block[data-channel='0'] table.window td", "cells => cells.map(c => +c.dataset.value)")
    window = np.pad(np.maximum(d.z1, 0), ((0, 0), (1, 1), (1, 1)))[:, 2 * y : 2 * y + 3, 2 * x : 2 * x + 3]
    np.testing.assert_allclose(values, window[0].reshape(-1), atol=1e-5)
    kernel = page.eval_on_selector_all(".channel-block[data-channel='0'] table.kernel td", "cells => cells.map(c => +c.dataset.value)")
    np.testing.assert_allclose(kernel, d.params["conv2.weight"][channel, 0].reshape(-1), rtol=1e-6)
    shown = {
        name: float(page.locator(f"#arith-{name}").get_attribute("data-value"))
        for name in ("channels", "bias", "z", "output", "activation", "grad", "terms", "input-grad")
    }
    weight = d.params["conv2.weight"][channel]
    assert shown["channels"] == pytest.approx(np.sum(window * weight), abs=1e-5)
    assert shown["bias"] == pytest.approx(d.params["conv2.bias"][channel])
    assert shown["z"] == pytest.approx(d.z2[channel, y, x], abs=1e-5) and shown["output"] == pytest.approx(d.z2[channel, y, x], abs=1e-5)
    assert shown["activation"] == pytest.approx(max(0.0, d.z2[channel, y, x]), abs=1e-5)
    assert number(page.locator("#arith-z").inner_text()) == pytest.approx(d.z2[channel, y, x], rel=1e-3, abs=1e-6)
    assert page.locator(".channel-block[data-channel='0'] .written").inner_text().count("·") == 9
    assert page.locator("#field").get_attribute("data-field") == f"{4 * y - 3},{4 * y + 3},{4 * x - 3},{4 * x + 3}"
    # Backward: ∂score/∂z of this pixel, its window's share, and the centre input pixel's ∂ as the sum of every share.
    assert shown["grad"] == pytest.approx(d.grad_z2[channel, y, x], abs=1e-6)
    share = page.eval_on_selector_all(".channel-block[data-channel='0'] table.share td", "cells => cells.map(c => +c.dataset.value)")
    np.testing.assert_allclose(np.array(share).reshape(3, 3)[1:, 1:], d.grad_z2[channel, y, x] * weight[0, 1:, 1:], atol=1e-6)
    assert shown["terms"] == pytest.approx(d.grad_a1[0, 2 * y, 2 * x], abs=1e-6)
    assert shown["input-grad"] == pytest.approx(d.grad_a1[0, 2 * y, 2 * x], abs=1e-6)
    assert canvas_colours(page, "#enlarged")[0] > 5
    save_screenshot(page, page.locator("#inspector-card"), "serve-drawpad-pixel.png", tmp_path)

    # ∂loss/∂· (p − y for class 7): the arithmetic follows.
    loss = direct(runs_root, seven_png(), class_index=7, target="loss")
    page.select_option("#target", "loss")
    page.wait_for_function("document.getElementById('saliency-title').textContent.includes('loss') && window.cnnIdle()")
    expected = float(loss.grad_z2[channel, y, x])
    assert abs(expected - shown["grad"]) > 1e-4  # the two targets differ here, so the check below means something
    page.wait_for_function(f"Math.abs(+document.getElementById('arith-grad').dataset.value - ({expected!r})) < 1e-6")
    assert "∂ loss" in page.locator("#backward-title").inner_text()


def test_upload_then_change_class_or_model_sends_a_request(server: str, page, runs_root: Path, seven: Path) -> None:
    """Defect 4: after an upload, changing the class or the model must ask the server again."""
    copy_run(runs_root, "smoke-copy")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/analyze" in r.url else None)
    open_with_upload(page, server, seven)
    first = len(requests)
    before = page.eval_on_selector("#saliency", "c => c.toDataURL()")
    page.select_option("#class", "3")
    page.wait_for_function("document.getElementById('explained').textContent === '3' && window.cnnIdle()")
    assert len(requests) == first + 1 and "class=3" in requests[-1]
    assert page.eval_on_selector("#saliency", "c => c.toDataURL()") != before
    other = "smoke-copy" if page.locator("#model").input_value() != "smoke-copy" else TRAINED_RUN
    page.select_option("#model", other)
    page.wait_for_function("document.getElementById('prediction').dataset.digit === '7' && window.cnnIdle()")
    assert len(requests) == first + 2 and f"model={other}" in requests[-1]


def test_clear_clears_the_answer_even_during_an_update(server: str, page, seven: Path) -> None:
    """Defect 5: Clear empties every result; an answer still on its way when Clear is pressed is dropped."""
    open_with_upload(page, server, seven)
    page.click("#clear")
    assert page.locator("#prediction").inner_text() == "–"
    assert page.locator("#probabilities .prob-row").count() == 0 and page.locator("#layers-forward figure").count() == 0
    assert canvas_colours(page, "#saliency")[0] == 1 and canvas_colours(page, "#input")[0] == 1
    held = []
    page.route("**/api/analyze*", lambda route: held.append(route))
    page.set_input_files("#upload", str(seven))
    while not held:
        page.wait_for_timeout(20)
    page.click("#clear")
    updates = page.evaluate("window.cnnStats.updates.length")
    held[0].continue_()
    page.wait_for_function("window.cnnIdle()")
    page.wait_for_timeout(200)
    assert page.locator("#prediction").inner_text() == "–"
    assert page.locator("#probabilities .prob-row").count() == 0
    assert page.evaluate("window.cnnStats.updates.length") == updates


def test_a_two_class_model_after_explaining_class_7(runs_root: Path, tmp_path: Path, page, seven: Path) -> None:
    """Defect 6: switching to a 2-class model while class 7 is explained shows that model's own answer."""
    from cnn_cli.config.load import load_config
    from cnn_cli.model.network import build_model
    from cnn_cli.runs.checkpoint import Checkpoint, save_checkpoint

    config = load_config("smoke", ["model.layers[5].out_features=2"])
    model = build_model(config, seed=0, dtype=config.train.dtype)
    checkpoint = tmp_path / "two.npz"
    data = {"mean": 0.13, "std": 0.31, "classes": [0, 1], "class_names": ["odd", "even"]}
    save_checkpoint(checkpoint, Checkpoint(params=model.params, config=config.as_dict(), data=data))
    served = Server(runs_root, checkpoint, "127.0.0.1", 0)
    served.start_thread()
    try:
        page.goto(served.url)
        page.wait_for_function("document.getElementById('model').options.length === 2")
        page.select_option("#model", TRAINED_RUN)
        page.set_input_files("#upload", str(seven))
        page.wait_for_function(IDLE)
        page.select_option("#class", "7")
        page.wait_for_function("document.getElementById('explained').textContent === '7' && window.cnnIdle()")
        held = []
        page.route("**/api/analyze*", lambda route: held.append(route))  # the new model's answer waits for the check
        page.select_option("#model", "checkpoint")
        while not held:
            page.wait_for_timeout(20)
        assert page.locator("#prediction").inner_text() == "–"  # the 10-class answer is gone at once
        assert page.locator("#probabilities .prob-row").count() == 0
        assert "class=" not in held[0].request.url  # class 7 is not asked of a 2-class model
        held[0].continue_()
        page.wait_for_function("document.getElementById('prediction').dataset.digit !== '' && window.cnnIdle()")
        assert page.locator("#message").inner_text() == ""
        assert page.locator("#probabilities .label").all_inner_texts() == ["odd", "even"]
        assert page.locator("#class option").all_inner_texts() == ["predicted", "odd", "even"]
        assert page.locator("#class").input_value() == ""
        assert page.locator("#explained").inner_text() in ("odd", "even")
    finally:
        served.shutdown()


def test_the_draw_page_has_no_sideways_scroll_at_390_px(server: str, page, seven: Path, tmp_path: Path) -> None:
    page.set_viewport_size(PHONE)
    open_with_upload(page, server, seven)
    hover_pixel(page, 'canvas.feature-map[data-layer="conv2"]', 3, 2, 2)
    page.mouse.down()
    page.mouse.up()
    page.wait_for_function("document.getElementById('arith-z') !== null && window.cnnIdle()")
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], widths
    too_wide = page.evaluate(
        """[...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
            .filter(e => !e.closest('.scroll, pre') && !e.closest('[hidden]') && e.id !== 'hover')
            .map(e => e.tagName + '#' + e.id + '.' + e.className)"""
    )
    assert too_wide == []
    save_screenshot(page, page, "phone-draw.png", tmp_path)


def test_a_max_pool_shows_its_winners(runs_root: Path, tmp_path: Path, page, seven: Path) -> None:
    """A model with a max-pool after conv1 (untrained: only the routing matters): its winners are drawn with a
    legend, one per pool window, and its pixels enlarge without a sum of products."""
    from cnn_cli.config.load import load_config
    from cnn_cli.model.network import build_model
    from cnn_cli.runs.checkpoint import Checkpoint, save_checkpoint

    config = load_config("smoke", ["model.layers[1]={type: maxpool2d, kernel_size: 2}"])
    model = build_model(config, seed=0, dtype=config.train.dtype)
    checkpoint = tmp_path / "pool.npz"
    save_checkpoint(
        checkpoint, Checkpoint(params=model.params, config=config.as_dict(), data={"mean": 0.13, "std": 0.31, "classes": list(range(10))})
    )
    served = Server(runs_root, checkpoint, "127.0.0.1", 0)
    served.start_thread()
    try:
        open_with_upload(page, served.url, seven)
        winners = page.locator('canvas.pool-winners[data-layer="maxpool2d1"]')
        assert winners.count() == 1
        figure = page.locator("#layers-forward figure").filter(has=winners)
        assert figure.locator(".legend-high").inner_text() == "1 won"
        # 8 channels of 14×14 conv outputs: one winner per 2×2 window, 8·7·7 in all.
        assert (
            page.eval_on_selector('canvas.pool-winners[data-layer="maxpool2d1"]', "c => c.mapGrid.values.reduce((a, b) => a + b, 0)")
            == 8 * 7 * 7
        )
        hover_pixel(page, 'canvas.feature-map[data-layer="maxpool2d1"]', 2, 3, 3)
        page.mouse.down()
        page.mouse.up()
        page.wait_for_function("!document.getElementById('inspector-card').hidden && window.cnnIdle()")
        assert page.locator("#inspector-title").inner_text() == "enlarged" and page.locator("#arith-z").count() == 0
        assert page.locator("#message").inner_text() == ""
    finally:
        served.shutdown()
