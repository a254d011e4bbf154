"""The draw page's numbers, checked against a direct NumPy computation of the trained ``smoke`` network.

``smoke`` is conv1 (8 filters, 3×3, stride 2, padding 1) → relu → conv2 (16, 3×3, stride 2, padding 1) → relu →
flatten → dense (10). Everything below is written out in NumPy from the checkpoint's arrays, with loops
where the formula has a sum, so that none of the project's layer code is on the checking side.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.serve.conftest import NEEDS_SERVE_EXTRA, TRAINED_RUN

pytest.importorskip("flask", reason=NEEDS_SERVE_EXTRA)
pytest.importorskip("threadpoolctl", reason=NEEDS_SERVE_EXTRA)

from cnn_cli.data.images import preprocess, read_grayscale_bytes  # noqa: E402
from cnn_cli.runs.checkpoint import load_checkpoint  # noqa: E402
from tests.serve.test_api import seven_png  # noqa: E402


def floats(encoded: dict) -> np.ndarray:
    """A float32 array as the server sends it (layer_views.encode_float)."""
    return np.frombuffer(base64.b64decode(encoded["float32"]), dtype="<f4").reshape(encoded["shape"])


def conv_loops(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """(C, H, W) ⋆ (O, C, k, k) + b, one output pixel at a time."""
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    out_h = (x.shape[1] + 2 * pad - k) // stride + 1
    out = np.zeros((w.shape[0], out_h, out_h))
    for o in range(w.shape[0]):
        for i in range(out_h):
            for j in range(out_h):
                out[o, i, j] = np.sum(padded[:, i * stride : i * stride + k, j * stride : j * stride + k] * w[o]) + b[o]
    return out


def conv_input_grad_loops(grad: np.ndarray, w: np.ndarray, shape: tuple[int, int, int], stride: int, pad: int) -> np.ndarray:
    """∂/∂x of a convolution: every upstream value spread back over its window, weighted by the kernel (+=)."""
    k = w.shape[2]
    padded = np.zeros((shape[0], shape[1] + 2 * pad, shape[2] + 2 * pad))
    for o in range(grad.shape[0]):
        for i in range(grad.shape[1]):
            for j in range(grad.shape[2]):
                padded[:, i * stride : i * stride + k, j * stride : j * stride + k] += grad[o, i, j] * w[o]
    return padded[:, pad : pad + shape[1], pad : pad + shape[2]]


@dataclass
class Direct:
    """The smoke network's forward and backward of one image, in plain NumPy (float64)."""

    x: np.ndarray
    z1: np.ndarray
    z2: np.ndarray
    logits: np.ndarray
    grad_z1: np.ndarray
    grad_a2: np.ndarray
    grad_z2: np.ndarray
    grad_a1: np.ndarray
    params: dict[str, np.ndarray]


def direct(runs_root: Path, png: bytes, class_index: int, target: str = "score") -> Direct:
    ckpt, _ = load_checkpoint(runs_root / TRAINED_RUN / "checkpoints" / "best.npz")
    p = {k: v.astype(np.float64) for k, v in ckpt.params.items()}
    pixels = preprocess(read_grayscale_bytes(png)).pixels
    x = ((pixels - float(ckpt.data["mean"])) / float(ckpt.data["std"]))[None].astype(np.float64)
    z1 = conv_loops(x, p["conv1.weight"], p["conv1.bias"], 2, 1)
    a1 = np.maximum(z1, 0)
    z2 = conv_loops(a1, p["conv2.weight"], p["conv2.bias"], 2, 1)
    a2 = np.maximum(z2, 0)
    logits = p["fc1.weight"] @ a2.reshape(-1) + p["fc1.bias"]
    onehot = np.eye(len(logits))[class_index]
    if target == "loss":
        e = np.exp(logits - logits.max())
        grad_logits = e / e.sum() - onehot  # p − y
    else:
        grad_logits = onehot
    grad_a2 = (p["fc1.weight"].T @ grad_logits).reshape(z2.shape)
    grad_z2 = grad_a2 * (z2 > 0)
    grad_a1 = conv_input_grad_loops(grad_z2, p["conv2.weight"], a1.shape, 2, 1)
    return Direct(x, z1, z2, logits, grad_a1 * (z1 > 0), grad_a2, grad_z2, grad_a1, p)


def post_pixel(client, query: str, png: bytes):
    return client.post(f"/api/pixel?{query}", data=png, content_type="image/png")


def test_the_layer_names_are_the_smoke_configs(client) -> None:
    result = client.post("/api/analyze", data=seven_png(), content_type="image/png").get_json()
    assert [layer["layer"] for layer in result["layers"]] == ["conv1", "relu1", "conv2", "relu2"]
    assert [w["layer"] for w in result["weights"]] == ["conv1", "conv2"]


@pytest.mark.parametrize("target", ["score", "loss"])
def test_every_layer_and_the_logits_equal_numpy(client, runs_root: Path, target: str) -> None:
    png = seven_png()
    result = client.post(f"/api/analyze?class=3&target={target}", data=png, content_type="image/png").get_json()
    d = direct(runs_root, png, 3, target)
    assert result["target"] == target and result["explained_index"] == 3
    np.testing.assert_allclose(result["logits"], d.logits, rtol=1e-4, atol=1e-4)
    conv1, relu1, conv2, relu2 = result["layers"]
    np.testing.assert_allclose(floats(conv1["values"]), d.z1, atol=1e-4)
    np.testing.assert_allclose(floats(relu1["values"]), np.maximum(d.z1, 0), atol=1e-4)
    np.testing.assert_allclose(floats(conv2["values"]), d.z2, atol=1e-4)
    np.testing.assert_allclose(floats(relu2["grad"]), d.grad_a2, atol=1e-5)
    np.testing.assert_allclose(floats(conv2["grad"]), d.grad_z2, atol=1e-5)
    np.testing.assert_allclose(floats(relu1["grad"]), d.grad_a1, atol=1e-5)
    np.testing.assert_allclose(floats(conv1["grad"]), d.grad_z1, atol=1e-5)
    # ∂/∂w of conv2: Σ over output pixels of ∂/∂z · the window (notes' §2.3), against the server's weight gradient.
    padded = np.pad(np.maximum(d.z1, 0), ((0, 0), (1, 1), (1, 1)))
    grad_w = np.zeros_like(d.params["conv2.weight"])
    for i in range(7):
        for j in range(7):
            grad_w += d.grad_z2[:, i, j][:, None, None, None] * padded[None, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
    np.testing.assert_allclose(floats(result["weights"][1]["grad"]), grad_w.reshape(-1, 3, 3)[:64], atol=1e-4)
    np.testing.assert_allclose(floats(result["weights"][1]["weight"]), d.params["conv2.weight"].reshape(-1, 3, 3)[:64])


@pytest.mark.parametrize(("layer", "channel", "y", "x"), [("conv1", 5, 6, 7), ("relu1", 2, 0, 13), ("conv2", 11, 3, 2)])
def test_the_arithmetic_behind_a_pixel_equals_numpy(client, runs_root: Path, layer: str, channel: int, y: int, x: int) -> None:
    png = seven_png()
    answer = post_pixel(client, f"layer={layer}&channel={channel}&y={y}&x={x}&class=7", png)
    assert answer.status_code == 200, answer.get_json()
    got = answer.get_json()
    d = direct(runs_root, png, 7)
    second = layer == "conv2"
    source = np.maximum(d.z1, 0) if second else d.x
    z = d.z2 if second else d.z1
    weight = d.params["conv2.weight" if second else "conv1.weight"][channel]
    bias = d.params["conv2.bias" if second else "conv1.bias"][channel]
    window = np.pad(source, ((0, 0), (1, 1), (1, 1)))[:, 2 * y : 2 * y + 3, 2 * x : 2 * x + 3]
    assert got["layer"] == ("conv2" if second else "conv1")  # a ReLU's pixel is its conv's pixel
    np.testing.assert_allclose([c["window"] for c in got["channels"]], window, atol=1e-5)
    np.testing.assert_allclose([c["kernel"] for c in got["channels"]], weight, rtol=1e-6)
    np.testing.assert_allclose([c["sum"] for c in got["channels"]], np.sum(window * weight, axis=(1, 2)), atol=1e-5)
    assert got["bias"] == pytest.approx(bias)
    assert got["sum"] == pytest.approx(z[channel, y, x], abs=1e-4)
    assert got["output"] == pytest.approx(z[channel, y, x], abs=1e-4)
    assert got["activation"]["type"] == "relu" and got["activation"]["value"] == pytest.approx(max(0.0, z[channel, y, x]), abs=1e-4)
    # The written sum names the real numbers: its first product is window[0, 0, 0]·kernel[0, 0, 0].
    first = got["channels"][0]["written"].split(" + ")[0]
    assert first.count("·") == 1 and len(got["channels"][0]["written"].split(" + ")) == 9
    # Receptive field on the 28×28 input: rows 2y−1..2y+1 of the layer's input, walked back once more for conv2.
    field = got["receptive_field"]
    expected = (4 * y - 3, 4 * y + 3, 4 * x - 3, 4 * x + 3) if second else (2 * y - 1, 2 * y + 1, 2 * x - 1, 2 * x + 1)
    assert (field["top"], field["bottom"], field["left"], field["right"]) == expected
    assert field["clipped_top"] == max(0, expected[0]) and field["clipped_right"] == min(27, expected[3])

    # Backward: the window's col2im share is ∂/∂z · kernel; the centre pixel's ∂/∂x is the sum of every window's share.
    back = got["backward"]
    grad_z = d.grad_z2 if second else d.grad_z1
    assert back["grad_output"] == pytest.approx(grad_z[channel, y, x], abs=1e-6)
    rows, cols = back["window_rows"], back["window_cols"]
    interior = [(a, b) for a in range(3) for b in range(3) if 0 <= 2 * y - 1 + a < source.shape[1] and 0 <= 2 * x - 1 + b < source.shape[2]]
    share = back["share"]
    assert rows == [2 * y - 1 + a for a in range(3)] and cols == [2 * x - 1 + b for b in range(3)]
    for a in range(3):
        for b in range(3):
            taps = [share[c][a][b] for c in range(len(share))]
            if (a, b) in interior:
                np.testing.assert_allclose(taps, grad_z[channel, y, x] * weight[:, a, b], atol=1e-6)
            else:  # in the zero padding: nothing to show
                assert taps == [None] * len(taps)
    if second:
        pixel = back["pixel"]
        assert back["input_grad"] == pytest.approx(d.grad_a1[pixel["channel"], pixel["y"], pixel["x"]], abs=1e-6)
        assert back["terms_sum"] == pytest.approx(back["input_grad"], abs=1e-6)
        assert back["terms_count"] == len(back["terms"]) > 0
        for term in back["terms"][:20]:
            assert term["grad"] == pytest.approx(d.grad_z2[term["o"], term["i"], term["j"]], abs=1e-6)
            assert term["weight"] == pytest.approx(d.params["conv2.weight"][term["o"], pixel["channel"], term["a"], term["b"]])


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("layer=fc1&channel=0&y=0&x=0", "not the output of a conv layer"),
        ("layer=flatten1&channel=0&y=0&x=0", "not the output of a conv layer"),
        ("layer=nope&channel=0&y=0&x=0", "no layer named 'nope'"),
        ("layer=conv1&channel=8&y=0&x=0", "outside its 8×14×14 output"),
        ("layer=conv1&channel=0&y=²&x=0", "y must be a non-negative integer"),
        ("layer=conv1&channel=0&y=0", "x must be a non-negative integer"),
        ("layer=conv1&channel=0&y=0&x=0&target=gain", "target must be one of score, loss"),
    ],
)
def test_a_bad_pixel_request_is_400(client, query: str, fragment: str) -> None:
    answer = post_pixel(client, query, seven_png())
    assert answer.status_code == 400 and fragment in answer.get_json()["error"], answer.get_json()


def test_max_pool_winners_are_where_each_window_peaked(tmp_path: Path) -> None:
    """A model with a max-pool (untrained: only the routing matters): its winners mark each window's maximum."""
    from cnn_cli.config.load import load_config
    from cnn_cli.model.network import build_model
    from cnn_cli.runs.checkpoint import Checkpoint, save_checkpoint
    from cnn_cli.serve.app import create_app

    config = load_config("smoke", ["model.layers[1]={type: maxpool2d, kernel_size: 2}"])
    model = build_model(config, seed=0, dtype=config.train.dtype)
    path = tmp_path / "pool.npz"
    save_checkpoint(
        path, Checkpoint(params=model.params, config=config.as_dict(), data={"mean": 0.13, "std": 0.31, "classes": list(range(10))})
    )
    (tmp_path / "runs").mkdir()
    app = create_app(tmp_path / "runs", path)
    result = app.test_client().post("/api/analyze", data=seven_png(), content_type="image/png").get_json()
    assert "layers" in result, result
    conv, pool = result["layers"][0], result["layers"][1]
    assert pool["type"] == "maxpool2d"
    values, winners = floats(conv["values"]), floats(pool["winners"])
    c, h, w = values.shape
    blocks = values.reshape(c, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 2, 4).reshape(c, h // 2, w // 2, 4)
    expected = np.zeros((c, h // 2, w // 2, 4))
    np.put_along_axis(expected, blocks.argmax(axis=-1)[..., None], 1.0, axis=-1)
    np.testing.assert_array_equal(winners, expected.reshape(c, h // 2, w // 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(c, h, w))
    np.testing.assert_allclose(floats(pool["values"]), blocks.max(axis=-1), rtol=1e-6)
    # A max-pool's pixel has no sum of products: refused, not taken for the conv before it.
    answer = app.test_client().post("/api/pixel?layer=maxpool2d1&channel=0&y=0&x=0", data=seven_png(), content_type="image/png")
    assert answer.status_code == 400 and "not the output of a conv layer" in answer.get_json()["error"]


@pytest.mark.parametrize(("layer", "channel", "y", "x"), [("conv1", 0, 0, 0), ("conv1", 7, 12, 5), ("conv2", 4, 0, 6), ("conv2", 15, 3, 3)])
def test_a_dilated_convolution_adds_up_too(tmp_path: Path, layer: str, channel: int, y: int, x: int) -> None:
    """conv1 with dilation 2 (untrained): the window's sum of products plus the bias is the layer's own output
    (computed by im2col, another code path), and an input pixel's ∂ is the sum of the window shares that reach it."""
    from cnn_cli.config.load import load_config
    from cnn_cli.model.network import build_model
    from cnn_cli.runs.checkpoint import Checkpoint, save_checkpoint
    from cnn_cli.serve.app import create_app

    config = load_config("smoke", ["model.layers[0].dilation=2"])
    model = build_model(config, seed=1, dtype=config.train.dtype)
    path = tmp_path / "dilated.npz"
    data = {"mean": 0.13, "std": 0.31, "classes": list(range(10))}
    save_checkpoint(path, Checkpoint(params=model.params, config=config.as_dict(), data=data))
    (tmp_path / "runs").mkdir()
    client = create_app(tmp_path / "runs", path).test_client()
    got = post_pixel(client, f"layer={layer}&channel={channel}&y={y}&x={x}&target=loss&class=2", seven_png()).get_json()
    assert got["dilation"] == ([2, 2] if layer == "conv1" else [1, 1])
    assert got["sum"] == pytest.approx(got["output"], abs=1e-4)
    back = got["backward"]
    assert back["terms_sum"] == pytest.approx(back["input_grad"], abs=1e-6)
    if layer == "conv1":  # the window's taps are two pixels apart
        assert back["window_rows"] == [2 * y - 1 + 2 * a for a in range(3)]
        assert got["receptive_field"]["bottom"] - got["receptive_field"]["top"] == 4
