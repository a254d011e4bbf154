"""The ``cnn serve`` HTTP API through Flask's test client: good and bad requests for every endpoint."""

from __future__ import annotations

import base64
import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.serve.conftest import NEEDS_SERVE_EXTRA, TRAINED_RUN, copy_run

pytest.importorskip("flask", reason=NEEDS_SERVE_EXTRA)
pytest.importorskip("threadpoolctl", reason=NEEDS_SERVE_EXTRA)

from cnn_cli.data.images import load_image
from cnn_cli.learn.visualize import feature_maps, saliency
from cnn_cli.runs.checkpoint import load_checkpoint
from cnn_cli.runs.folders import RunPaths
from cnn_cli.runs.inference import predict_images
from cnn_cli.serve.analysis import encode_signed
from cnn_cli.serve.app import MAX_UPLOAD_BYTES


def seven_png(size: int = 280, width: int = 22) -> bytes:
    """A 7 drawn as a user would: black strokes on white, as the draw pad sends it."""
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    s = size / 280
    draw.line([(70 * s, 60 * s), (215 * s, 60 * s), (125 * s, 235 * s)], fill=0, width=int(width * s), joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decode(encoded: dict) -> np.ndarray:
    data = np.frombuffer(base64.b64decode(encoded["data"]), dtype=np.uint8)
    return data.reshape(encoded["shape"])


# ---------------------------------------------------------------- draw pad


def test_analyze_matches_cnn_predict_and_the_viz_functions(client, runs_root: Path, tmp_path: Path) -> None:
    png = seven_png()
    response = client.post("/api/analyze", data=png)
    assert response.status_code == 200, response.json
    result = response.json

    # The same preparation and probabilities as `cnn predict` on the same bytes in a file.
    image_file = tmp_path / "seven.png"
    image_file.write_bytes(png)
    checkpoint = RunPaths(runs_root / TRAINED_RUN).best
    predicted = predict_images([str(image_file)], checkpoint, top_k=10)[0]
    assert result["prediction"] == str(predicted.prediction) == "7"
    assert predicted.top_k is not None
    by_class = dict(predicted.top_k)
    assert result["probabilities"] == pytest.approx([by_class[str(c)] for c in range(10)], abs=1e-5)
    assert abs(sum(result["probabilities"]) - 1) < 1e-4
    pixels = load_image(image_file).pixels
    assert np.array_equal(decode(result["input"]), np.round(255 * pixels).astype(np.uint8))

    # Feature maps and saliency are what cnn_cli.learn.visualize computes for the same input.
    ckpt, model = load_checkpoint(checkpoint)
    x = ((pixels - ckpt.data["mean"]) / ckpt.data["std"]).astype(model.dtype)[None, None]
    expected_maps = feature_maps(model, x)
    assert [m["layer"] for m in result["feature_maps"]] == [name for name, _ in expected_maps]
    for got, (_, maps) in zip(result["feature_maps"], expected_maps, strict=True):
        assert got["shape"] == list(maps.shape)
        assert got["maps"]["scale"] == pytest.approx(float(np.abs(maps).max()), rel=1e-5)
        assert np.abs(decode(got["maps"]).astype(int) - decode(encode_signed(maps)).astype(int)).max() <= 1
    gradient, class_index = saliency(model, x)
    assert class_index == result["explained_index"] == 7
    assert result["saliency"]["scale"] == pytest.approx(float(np.abs(gradient).max()), rel=1e-4)
    assert np.abs(decode(result["saliency"]).astype(int) - decode(encode_signed(gradient)).astype(int)).max() <= 1
    assert result["server_ms"] > 0


def test_layer_gradients_start_from_the_explained_class_score(client) -> None:
    for class_index in (3, 7):
        result = client.post(f"/api/analyze?class={class_index}", data=seven_png()).json
        assert result["explained_index"] == class_index
        assert result["prediction"] == "7"  # the prediction does not change with the class explained
        layers = result["layer_gradients"]
        assert [layer["layer"] for layer in layers] == ["conv1", "relu1", "conv2", "relu2", "flatten1", "fc1"]
        logits_grad = layers[-1]
        assert logits_grad["norm"] == pytest.approx(1.0)  # dScore_k/dlogits is one-hot
        assert np.flatnonzero(decode(logits_grad["vector"]) != 128).tolist() == [class_index]
        assert all(layer["norm"] > 0 for layer in layers)
        spatial = [layer for layer in layers if "map" in layer]
        assert spatial and all(decode(layer["map"]).max() == 255 for layer in spatial)
    three = client.post("/api/analyze?class=3", data=seven_png()).json
    seven = client.post("/api/analyze?class=7", data=seven_png()).json
    assert three["saliency"]["data"] != seven["saliency"]["data"]


def test_analyze_accepts_a_multipart_upload_and_a_jpeg(client) -> None:
    image = Image.open(io.BytesIO(seven_png())).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    response = client.post("/api/analyze", data={"image": (io.BytesIO(buffer.getvalue()), "seven.jpg")}, content_type="multipart/form-data")
    assert response.status_code == 200, response.json
    assert response.json["prediction"] == "7"


def test_models_default_to_the_newest_completed_run(client, runs_root: Path) -> None:
    copy_run(runs_root, "older", started="2000-01-01T00:00:00")
    copy_run(runs_root, "newest-running", status="running", started="2999-01-01T00:00:00")
    copy_run(runs_root, "newer", started="2998-01-01T00:00:00")
    info = client.get("/api/models").json
    assert info["default"] == "newer"
    assert {m["id"] for m in info["models"]} == {TRAINED_RUN, "older", "newest-running", "newer"}
    assert client.post("/api/analyze?model=older", data=seven_png()).status_code == 200


def test_no_model_yet_is_a_clear_404(tmp_path: Path) -> None:
    from cnn_cli.serve.app import create_app

    client = create_app(tmp_path).test_client()
    assert client.get("/api/models").json == {"default": None, "models": []}
    response = client.post("/api/analyze", data=seven_png())
    assert response.status_code == 404
    assert "no completed run" in response.json["error"]


def test_an_explicit_checkpoint_is_the_default_model(runs_root: Path) -> None:
    from cnn_cli.serve.app import create_app

    client = create_app(runs_root / "missing-folder", checkpoint=RunPaths(runs_root / TRAINED_RUN).best).test_client()
    assert client.get("/api/models").json["default"] == "checkpoint"
    assert client.post("/api/analyze", data=seven_png()).json["prediction"] == "7"


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A 60-byte PNG that declares 2.5 billion pixels: a decompression bomb's header, refused before any decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "no image"),
        (b"this is not an image", "not an image"),
        (seven_png()[:300], "cannot decode"),
        (bomb_png(), "refused, too many pixels"),
    ],
    ids=["empty", "text", "truncated-png", "decompression-bomb"],
)
def test_a_bad_image_is_400_and_the_server_keeps_serving(client, body: bytes, fragment: str) -> None:
    response = client.post("/api/analyze", data=body)
    assert response.status_code == 400
    assert fragment in response.json["error"]
    assert client.post("/api/analyze", data=seven_png()).status_code == 200


@pytest.mark.parametrize("query", ["class=abc", "class=-1", "class=10", "class=1e3"])
def test_a_bad_class_is_400(client, query: str) -> None:
    response = client.post(f"/api/analyze?{query}", data=seven_png())
    assert response.status_code == 400
    assert "class" in response.json["error"]


def test_an_upload_above_the_limit_is_413(client) -> None:
    too_big = seven_png() + b"\0" * MAX_UPLOAD_BYTES
    assert client.post("/api/analyze", data=too_big).status_code == 413
    multipart = {"image": (io.BytesIO(too_big), "big.png")}
    assert client.post("/api/analyze", data=multipart, content_type="multipart/form-data").status_code == 413
    assert client.post("/api/analyze", data=seven_png()).status_code == 200


# ---------------------------------------------------------------- runs


def test_runs_list_shows_each_run(client) -> None:
    (run,) = client.get("/api/runs").json["runs"]
    assert run["name"] == TRAINED_RUN
    assert run["status"] == "completed"
    assert run["config"] == "smoke"
    assert run["epochs"] == run["epochs_planned"] == 2
    assert 0.85 < run["test_acc"] <= 1 and 0.85 < run["best_val_acc"] <= 1
    assert run["started"].startswith("20")


def test_run_detail_has_curves_config_and_polls_cheaply(client, runs_root: Path) -> None:
    detail = client.get(f"/api/runs/{TRAINED_RUN}").json
    assert [row["epoch"] for row in detail["metrics"]] == [1, 2]
    assert detail["config_text"].startswith("name: smoke")
    gradients = detail["gradients"]  # training logs them by default (train.log_gradients)
    assert gradients["present"] is True
    assert [layer["layer"] for layer in gradients["layers"]][:1] == ["conv1"] and len(gradients["layers"][0]["step"]) >= 2
    unchanged = client.get(f"/api/runs/{TRAINED_RUN}?since={detail['stamp']}").json
    assert unchanged == {"stamp": detail["stamp"], "unchanged": True}
    metrics = RunPaths(runs_root / TRAINED_RUN).metrics
    metrics.write_text(metrics.read_text() + "3,471,0.003,0.1,0.96,0.2,0.95,0.3,30000.0\n")
    grown = client.get(f"/api/runs/{TRAINED_RUN}?since={detail['stamp']}").json
    assert [row["epoch"] for row in grown["metrics"]] == [1, 2, 3]


GRADIENTS_HEADER = "epoch,step,event,layer,type,weight_grad_norm,bias_grad_norm,input_grad_norm,update_ratio,dead_fraction\n"


def test_gradients_csv_becomes_per_layer_series(client, runs_root: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(0.01, 2.0, size=(3, 2))
    rows = [GRADIENTS_HEADER]
    for i, step in enumerate((10, 20, 30)):
        rows.append(f"1,{step},step,conv1,conv2d,{float(values[i, 0])!r},0.5,,{float(values[i, 1])!r},\n")
        rows.append(f"1,{step},step,relu1,relu,,,0.25,,0.125\n")
    rows.append("1,30,epoch,conv1,conv2d,9.0,9.0,,,\n")  # epoch rows are not mixed into the step series
    rows.append("1,40,step,conv1,conv2d,0.3")  # the row being appended: no newline yet
    (runs_root / TRAINED_RUN / "gradients.csv").write_text("".join(rows))
    gradients = client.get(f"/api/runs/{TRAINED_RUN}").json["gradients"]
    assert gradients["present"] and gradients["event"] == "step"
    conv, relu = gradients["layers"]
    assert (conv["layer"], conv["type"], relu["layer"]) == ("conv1", "conv2d", "relu1")
    assert conv["step"] == [10, 20, 30]
    assert conv["weight_grad_norm"] == pytest.approx(values[:, 0].tolist())
    assert conv["update_ratio"] == pytest.approx(values[:, 1].tolist())
    assert conv["input_grad_norm"] == [None, None, None]
    assert relu["dead_fraction"] == [0.125] * 3 and relu["weight_grad_norm"] == [None] * 3


def test_evaluation_gives_the_confusion_matrix_and_confident_mistakes(client) -> None:
    result = client.get(f"/api/runs/{TRAINED_RUN}/evaluation").json
    matrix = np.array(result["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == result["n"] == 10_000
    assert result["accuracy"] == pytest.approx(matrix.trace() / matrix.sum())
    summary = client.get(f"/api/runs/{TRAINED_RUN}").json["summary"]
    assert result["accuracy"] == pytest.approx(summary["test_accuracy"])
    mistakes = result["mistakes"]
    assert len(mistakes) == 24
    assert all(m["true"] != m["predicted"] for m in mistakes)
    confidence = [m["probability"] for m in mistakes]
    assert confidence == sorted(confidence, reverse=True)
    assert decode(mistakes[0]["image"]).shape == (28, 28)


def test_pages_are_served_from_the_package(client) -> None:
    for path, marker in (("/", b'id="pad"'), ("/runs", b'id="runs"'), (f"/runs/{TRAINED_RUN}", b'id="loss-chart"')):
        response = client.get(path)
        assert response.status_code == 200 and marker in response.data
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    for asset in ("common.js", "draw.js", "run.js", "runs.js", "style.css"):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200 and response.data
        assert b"http://" not in response.data and b"https://" not in response.data  # nothing fetched from elsewhere


def test_html_links_only_local_assets() -> None:
    from cnn_cli.serve.app import STATIC_DIR, TEMPLATE_DIR

    pages = [*STATIC_DIR.glob("*.html"), *TEMPLATE_DIR.glob("*.html")]
    assert len(pages) >= 4  # the shared page.html and one per page
    for page in pages:
        text = page.read_text()
        assert "http://" not in text and "https://" not in text and "//" not in text.replace("<!--", ""), page.name


# ---------------------------------------------------------------- safety


TRAVERSALS = [
    "/api/runs/..",
    "/api/runs/%2e%2e",
    "/api/runs/%2E%2E",
    "/api/runs/..%2f..%2fetc",
    "/api/runs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/api/runs//etc",
    "/api/runs/%2fetc%2fpasswd",
    "/api/runs/.hidden",
    "/api/runs/smoke-trained%00",
    "/runs/..",
    "/runs/%2e%2e",
    "/runs//etc/passwd",
    "/api/runs/../../etc/passwd/evaluation",
    "/api/runs/%2e%2e/evaluation",
    "/static/../app.py",
    "/static/%2e%2e/app.py",
    "/static/..%2fapp.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/etc/passwd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (400, 404), (path, response.status_code)
    assert b"root:" not in response.data and b"import" not in response.data


@pytest.mark.parametrize("model", ["..", "../smoke-trained", "/etc", "%2e%2e", "smoke-trained/../smoke-trained", "nope"])
def test_a_bad_model_name_is_404(client, model: str) -> None:
    assert client.post(f"/api/analyze?model={model}", data=seven_png()).status_code == 404


def test_symlinks_out_of_the_runs_folder_are_refused(client, runs_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(runs_root / TRAINED_RUN, outside)
    (runs_root / "escape").symlink_to(outside, target_is_directory=True)
    for path in ("/api/runs/escape", "/runs/escape", "/api/runs/escape/evaluation"):
        assert client.get(path).status_code == 404, path
    assert client.post("/api/analyze?model=escape", data=seven_png()).status_code == 404
    assert "escape" not in {run["name"] for run in client.get("/api/runs").json["runs"]}

    # A file inside a run that links out is not read either.
    secret = tmp_path / "secret.txt"
    secret.write_text("name: secret\n")
    config = runs_root / TRAINED_RUN / "config.yaml"
    config.unlink()
    config.symlink_to(secret)
    assert "secret" not in client.get(f"/api/runs/{TRAINED_RUN}").get_data(as_text=True)


def test_latest_link_inside_the_runs_folder_works(client, runs_root: Path) -> None:
    (runs_root / "latest").symlink_to(TRAINED_RUN, target_is_directory=True)
    assert client.get("/api/runs/latest").status_code == 200
    assert [run["name"] for run in client.get("/api/runs").json["runs"]] == [TRAINED_RUN]


def tree_state(root: Path) -> dict[str, tuple[int, int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


def test_no_endpoint_writes_or_deletes(client, runs_root: Path) -> None:
    before = tree_state(runs_root)
    run = TRAINED_RUN
    urls = ["/", "/runs", f"/runs/{run}", "/api/models", "/api/runs", f"/api/runs/{run}", f"/api/runs/{run}/evaluation"]
    for url in urls:
        assert client.get(url).status_code == 200, url
        for method in (client.put, client.delete, client.patch):
            assert method(url).status_code == 405, (method, url)
    assert client.post("/api/analyze", data=seven_png()).status_code == 200
    for url in urls:
        assert client.post(url).status_code == 405, url
    assert client.delete("/api/analyze").status_code == 405
    assert tree_state(runs_root) == before


# ---------------------------------------------------------------- half-written runs


def half_written_runs(runs_root: Path) -> list[str]:
    """Run folders as a crash, a training in progress or an older version can leave them."""
    only_config = runs_root / "only-config"
    only_config.mkdir()
    (only_config / "config.yaml").write_text("name: smoke\ntrain: {epochs: 3}\n")

    truncated = copy_run(runs_root, "truncated-json")
    truncated.run_info.write_text('{"status": "runn')
    truncated.summary.write_text("")

    half_row = copy_run(runs_root, "half-row", status="running")
    half_row.metrics.write_text(half_row.metrics.read_text() + "3,471,0.0")
    (half_row.root / "gradients.csv").write_text(GRADIENTS_HEADER + "1,10,step,conv1,conv2d,0.1,0.2,,0.01,\n1,20,st")
    half_row.summary.unlink()

    garbage = copy_run(runs_root, "garbage")
    garbage.metrics.write_bytes(b"\xff\xfe\x00garbage,\n1,2,3\n")
    garbage.config.write_bytes(b"\xff: [unclosed\n")
    garbage.run_info.write_text("[1, 2, 3]")
    garbage.best.write_bytes(b"PK\x03\x04 not really a zip")
    (garbage.root / "gradients.csv").write_bytes(b"\x00\x01\x02")

    no_checkpoint = copy_run(runs_root, "no-checkpoint", status="running")
    for path in no_checkpoint.checkpoints.iterdir():
        path.unlink()

    wrong_types = copy_run(runs_root, "wrong-types")
    wrong_types.run_info.write_text(json.dumps({"status": None, "started": 5}))
    wrong_types.summary.write_text(json.dumps({"test_accuracy": "high", "best_val_accuracy": [1]}))
    return ["only-config", "truncated-json", "half-row", "garbage", "no-checkpoint", "wrong-types"]


def test_half_written_run_folders_never_crash_a_page(client, runs_root: Path) -> None:
    names = half_written_runs(runs_root)
    response = client.get("/api/runs")
    assert response.status_code == 200, response.json
    listed = {run["name"]: run for run in response.json["runs"]}
    assert set(names) <= set(listed)
    assert listed["half-row"]["epochs"] == 2  # the row being written is not counted
    assert listed["truncated-json"]["status"] == "unknown"
    for name in names:
        assert client.get(f"/runs/{name}").status_code == 200, name
        detail = client.get(f"/api/runs/{name}")
        assert detail.status_code == 200, (name, detail.data[:300])
    # The evaluation of a run without a readable checkpoint is a clear error; one with a checkpoint works.
    for name, status in (("only-config", 404), ("no-checkpoint", 404), ("garbage", 400), ("half-row", 200)):
        evaluation = client.get(f"/api/runs/{name}/evaluation")
        assert evaluation.status_code == status, (name, evaluation.status_code)
        assert ("error" in evaluation.json) is (status != 200)
    assert client.get("/api/runs/half-row").json["gradients"]["layers"][0]["step"] == [10]
    assert client.post("/api/analyze?model=garbage", data=seven_png()).status_code == 400
    assert client.get("/api/models").json["default"] in (TRAINED_RUN, "truncated-json", "wrong-types", "half-row")
    assert client.post("/api/analyze", data=seven_png()).status_code == 200
