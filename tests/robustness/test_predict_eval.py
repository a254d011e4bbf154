"""``cnn predict`` and ``cnn eval`` the way people use them, and OS errors as one line (issues 13 and 14).

- photos: EXIF orientation, uneven lighting, things that are not digits;
- sources: ``-`` (stdin), folders (recursive, sorted), one unreadable path among good ones;
- ``cnn eval RUN_DIR`` / ``cnn eval`` (newest completed run), the JSON names split and checkpoint;
  ``--split val`` with no validation split;
- paths the OS refuses (a file where a folder should be, permission denied): one line naming the path.

A small model trained on real MNIST (2000 images, one epoch, ~88% test accuracy) judges the photos.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnn_cli.cli.main import cli
from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import load_config
from cnn_cli.data.idx import read_images, read_labels
from cnn_cli.data.images import flatten_background, load_image
from cnn_cli.errors import os_error_exit_code, os_error_message
from cnn_cli.runs.inference import predict_images
from cnn_cli.training.train import train
from tests.support.cli import EXIT_BAD_INPUT, EXIT_FAULT, Outcome, cli_command, cli_environment, error_line, invoke_cli, run_cli
from tests.support.synthetic import make_idx_dataset, tiny_config

EXIF_ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def mnist_model(tmp_path_factory, mnist_data_dir: Path) -> Path:
    run = tmp_path_factory.mktemp("mnist-model") / "run"
    config = load_config("smoke", [f"data.data_dir={mnist_data_dir}", "data.limit=2000", "data.val_size=500"])
    result = train(config, run_dir=run, log=lambda _line: None)
    assert result.status == "completed"
    return result.run.best


@pytest.fixture(scope="module")
def sevens(mnist_data_dir: Path) -> list[np.ndarray]:
    """Real MNIST test 7s, as float (28, 28) ink in [0, 1]."""
    images = read_images(mnist_data_dir / "mnist" / "t10k-images-idx3-ubyte")[:300]
    labels = read_labels(mnist_data_dir / "mnist" / "t10k-labels-idx1-ubyte")[:300]
    return [images[i] / 255.0 for i in np.flatnonzero(labels == 7)[:5]]


def paper_photo(ink: np.ndarray, gradient: float = 0.0, scale: int = 4, seed: int = 0) -> np.ndarray:
    """Dark ink on light paper, upscaled, with a brightness gradient from left to right and sensor noise: uint8 (H, W)."""
    big = np.kron(ink, np.ones((scale, scale)))
    gray = 0.9 - 0.65 * big
    gray *= 1.0 - gradient * np.linspace(0.0, 1.0, big.shape[1])[None, :]
    gray += np.random.default_rng(seed).normal(0.0, 0.01, gray.shape)
    return (np.clip(gray, 0.0, 1.0) * 255).round().astype(np.uint8)


def predictions(outcome: Outcome) -> list[dict]:
    assert "Traceback" not in outcome.output, outcome.output
    return json.loads(outcome.stdout)


# ---------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_applied(tmp_path: Path, mnist_model: Path, sevens: list[np.ndarray], suffix: str) -> None:
    """A phone stores the photo rotated and says so in the EXIF tag (6: rotate 90° clockwise to view)."""
    upright = Image.fromarray(paper_photo(sevens[0]))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as the sensor saw it
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    tagged, untagged, straight = tmp_path / f"tagged{suffix}", tmp_path / f"untagged{suffix}", tmp_path / f"upright{suffix}"
    stored.save(tagged, exif=exif.tobytes())
    stored.save(untagged)
    upright.save(straight)
    assert Image.open(tagged).getexif()[EXIF_ORIENTATION] == 6  # the file really holds the tag

    lossy = 0.25 if suffix == ".jpg" else 1e-6
    np.testing.assert_allclose(load_image(tagged).pixels, load_image(straight).pixels, atol=lossy)
    assert np.abs(load_image(untagged).pixels - load_image(straight).pixels).max() > 0.5  # the check can fail: ignoring the tag differs
    results = predictions(invoke_cli(["predict", tagged, untagged, "--checkpoint", mnist_model, "--json", "--top-k", "1"]))
    assert results[0]["prediction"] == 7, results


def test_a_broken_exif_block_leaves_the_image_readable(tmp_path: Path, mnist_model: Path) -> None:
    path = tmp_path / "odd-exif.jpg"
    Image.fromarray(paper_photo(np.eye(28))).save(path, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    assert load_image(path).pixels.max() > 0
    outcome = run_cli(["predict", path, "--checkpoint", mnist_model])
    assert outcome.code == 0 and "Corrupt EXIF" not in outcome.stderr and "UserWarning" not in outcome.stderr, outcome.stderr


# ---------------------------------------------------------------- uneven lighting


def test_a_brightness_gradient_leaves_no_grey_box(sevens: list[np.ndarray], mnist_model: Path, tmp_path: Path) -> None:
    """A 15% brightness gradient across a photo of a 7: preprocessed as if evenly lit, and still a confident 7."""
    paths = []
    for i, seven in enumerate(sevens):
        even, uneven = tmp_path / f"even{i}.png", tmp_path / f"uneven{i}.png"
        Image.fromarray(paper_photo(seven, seed=i)).save(even)
        Image.fromarray(paper_photo(seven, gradient=0.15, seed=i)).save(uneven)
        clean, lit = load_image(even).pixels, load_image(uneven).pixels
        assert np.abs(clean - lit).max() < 0.15
        box = lit > 0
        rows, cols = np.flatnonzero(box.any(axis=1)), np.flatnonzero(box.any(axis=0))
        assert rows[-1] - rows[0] < 21 and cols[-1] - cols[0] < 21  # only the digit is kept, not a 20x20 box of paper
        assert (lit > 0).sum() <= 1.2 * (clean > 0).sum()
        paths.append(uneven)
    results = predictions(invoke_cli(["predict", *paths, "--checkpoint", mnist_model, "--json"]))
    assert sum(r["prediction"] == 7 for r in results) >= 4, results
    assert sum("warning" in r for r in results) <= 1, results


def test_background_flattening_removes_a_tilt_and_keeps_the_strokes() -> None:
    y, x = np.mgrid[0:60, 0:80] / 60.0
    paper = 0.1 + 0.15 * x + 0.05 * y * y
    strokes = np.zeros_like(paper)
    strokes[10:50, 30:36] = 0.7
    strokes[10:16, 20:60] = 0.7
    flat = flatten_background(paper + strokes)
    np.testing.assert_allclose(flat[strokes == 0], 0.0, atol=0.02)
    np.testing.assert_allclose(flat[strokes > 0], 0.7, atol=0.02)
    plain = (paper + strokes) - (paper + strokes).min()  # what a plain min-max stretch keeps of the paper
    assert plain[strokes == 0].max() > 0.15


# ---------------------------------------------------------------- a hint of doubt


def test_things_that_are_not_digits_get_a_warning(tmp_path: Path, mnist_model: Path, mnist_data_dir: Path) -> None:
    square = np.full((80, 80), 255, np.uint8)
    square[20:60, 20:60] = 0
    noise = np.random.default_rng(0).integers(0, 256, (60, 60)).astype(np.uint8)
    plus = np.full((80, 80), 255, np.uint8)
    plus[38:42, 10:70] = 0
    plus[10:70, 38:42] = 0
    odd = []
    for name, pixels in (("square", square), ("noise", noise), ("plus", plus)):
        odd.append(tmp_path / f"{name}.png")
        Image.fromarray(pixels).save(odd[-1])
    digits = read_images(mnist_data_dir / "mnist" / "t10k-images-idx3-ubyte")[:20]
    real = []
    for i, digit in enumerate(digits):
        real.append(tmp_path / f"digit{i:02d}.png")
        Image.fromarray(255 - np.kron(digit, np.ones((3, 3), np.uint8))).save(real[-1])
    outcome = invoke_cli(["predict", *odd, *real, "--checkpoint", mnist_model])
    assert outcome.code == 0, outcome.output
    warned = {line.split(": ")[1] for line in outcome.stderr.splitlines() if line.startswith("warning: ")}
    assert {str(p) for p in odd} <= warned, outcome.stderr
    assert len(warned & {str(p) for p in real}) <= 4, "real digits are mostly predicted without doubt"
    assert any("unlike an MNIST digit" in line and "square" in line for line in outcome.stderr.splitlines())
    assert any("low confidence" in line for line in outcome.stderr.splitlines())


# ---------------------------------------------------------------- stdin and folders


def test_predict_dash_reads_one_image_from_stdin(tmp_path: Path, mnist_model: Path, sevens: list[np.ndarray]) -> None:
    path = tmp_path / "seven.png"
    Image.fromarray(paper_photo(sevens[1])).save(path)
    result = CliRunner().invoke(cli, ["predict", "-", "--checkpoint", str(mnist_model), "--json", "--top-k", "2"], input=path.read_bytes())
    assert result.exit_code == 0, result.output
    (from_stdin,) = json.loads(result.stdout)
    (from_file,) = predictions(invoke_cli(["predict", path, "--checkpoint", mnist_model, "--json", "--top-k", "2"]))
    assert from_stdin["path"] == "-" and from_stdin["probabilities"] == from_file["probabilities"]
    assert len(from_stdin["probabilities"]) == 2


def test_predict_dash_in_a_real_pipe(tmp_path: Path, mnist_model: Path, sevens: list[np.ndarray]) -> None:
    path = tmp_path / "seven.jpg"
    Image.fromarray(paper_photo(sevens[2])).save(path)
    with path.open("rb") as image:
        proc = subprocess.run(
            cli_command(["predict", "-", "--checkpoint", mnist_model]), stdin=image, capture_output=True, timeout=60, env=cli_environment()
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().startswith("-: 7")


def test_predict_dash_with_garbage_on_stdin_is_one_line(mnist_model: Path) -> None:
    result = CliRunner().invoke(cli, ["predict", "-", "--checkpoint", str(mnist_model)], input=b"not an image")
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.stderr.splitlines() == ["error: -: not an image Pillow can read (PNG, JPEG, ...)"]


def test_a_folder_is_searched_recursively_in_sorted_order(tmp_path: Path, mnist_model: Path, sevens: list[np.ndarray]) -> None:
    folder = tmp_path / "photos"
    for relative in ("b.png", "a/z.JPG", "a/c/d.png", "0.png"):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(paper_photo(sevens[3])).convert("RGB").save(folder / relative, format="PNG" if relative.endswith("png") else "JPEG")
    (folder / "notes.txt").write_text("not an image, not even looked at")
    (folder / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    outcome = invoke_cli(["predict", folder, "--checkpoint", mnist_model, "--json", "--top-k", "1"])
    assert outcome.code == EXIT_FAULT, "one broken image: exit 1, the rest still predicted"
    results = predictions(outcome)
    expected = sorted(str(folder / r) for r in ("b.png", "a/z.JPG", "a/c/d.png", "0.png", "a/broken.png"))
    assert [r["path"] for r in results] == expected
    assert [r["prediction"] for r in results if "error" not in r] == [7, 7, 7, 7]
    assert all(len(r["probabilities"]) == 1 for r in results if "error" not in r)
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "broken.png" in errors[0]


def test_an_empty_folder_is_one_line(tmp_path: Path, mnist_model: Path) -> None:
    (tmp_path / "empty").mkdir()
    outcome = invoke_cli(["predict", tmp_path / "empty", "--checkpoint", mnist_model])
    error_line(outcome, EXIT_BAD_INPUT, str(tmp_path / "empty"), "no image files")


def refuse(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    """Make the OS refuse to open or list ``target`` (root can read anything, so chmod alone would prove nothing)."""
    real_open, real_scandir, real_os_open = Path.open, os.scandir, os.open

    def guarded_open(self, *args, **kwargs):
        if Path(self) == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    def guarded_scandir(path="."):
        if Path(path) == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    def guarded_os_open(path, *args, **kwargs):  # the bounded reader opens files with os.open
        if Path(path) == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded_open)
    monkeypatch.setattr(os, "scandir", guarded_scandir)
    monkeypatch.setattr(os, "open", guarded_os_open)


def test_an_unreadable_image_and_folder_do_not_abort_the_batch(
    tmp_path: Path, mnist_model: Path, sevens: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, locked = tmp_path / "good.png", tmp_path / "locked.png"
    for path in (good, locked):
        Image.fromarray(paper_photo(sevens[4])).save(path)
    results = predict_images([str(locked), str(good)], mnist_model)
    assert [r.error for r in results] == ["", ""]
    refuse(monkeypatch, locked)
    outcome = invoke_cli(["predict", locked, good, "--checkpoint", mnist_model])
    assert outcome.code == EXIT_FAULT
    assert outcome.stdout.startswith(f"{good}: 7")
    assert f"error: {locked}: cannot read (Permission denied)" in outcome.stderr.splitlines()

    monkeypatch.undo()
    folder = tmp_path / "album"
    (folder / "private").mkdir(parents=True)
    shutil.copy(good, folder / "ok.png")
    shutil.copy(good, folder / "private" / "hidden.png")
    refuse(monkeypatch, folder / "private")
    outcome = invoke_cli(["predict", folder, "--checkpoint", mnist_model, "--json"])
    assert outcome.code == EXIT_FAULT
    results = predictions(outcome)
    assert [r["path"] for r in results if r["prediction"] is not None] == [str(folder / "ok.png")]
    assert any(str(folder / "private") in line and "cannot list the folder" in line for line in outcome.stderr.splitlines())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_really_unreadable_file_in_a_real_process(tmp_path: Path, mnist_model: Path, sevens: list[np.ndarray]) -> None:
    good, locked = tmp_path / "good.png", tmp_path / "locked.png"
    for path in (good, locked):
        Image.fromarray(paper_photo(sevens[0])).save(path)
    locked.chmod(0)
    proc = subprocess.run(cli_command(["predict", locked, good, "--checkpoint", mnist_model]), capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_FAULT and f"{good}: 7" in proc.stdout and "Permission denied" in proc.stderr


# ---------------------------------------------------------------- cnn eval finds what you mean


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """runs/ with: old (completed), new (completed, no validation split), cut (interrupted, newest), empty (no checkpoint)."""
    folder = tmp_path_factory.mktemp("eval")
    paths = make_idx_dataset(folder / "idx", n_train=300, n_test=100)
    root = folder / "runs"
    for name, val_size, stop in (("old", 100, None), ("new", 0, None), ("cut", 100, 12)):
        config = tiny_config(paths, epochs=2)
        config["data"]["val_size"] = val_size
        train(config_from_dict(config), run_dir=root / name, log=lambda _line: None, stop_after_steps=stop)
    (root / "empty").mkdir()  # a run that crashed before its first epoch ended: a config, no checkpoint
    shutil.copy(root / "old" / "config.yaml", root / "empty" / "config.yaml")
    for name, started in (("old", "2026-01-01T10:00:00"), ("new", "2026-01-02T10:00:00"), ("cut", "2026-01-03T10:00:00")):
        info = json.loads((root / name / "run.json").read_text())
        (root / name / "run.json").write_text(json.dumps({**info, "started": started}))
    assert (root / "cut" / "checkpoints" / "best.npz").is_file()  # interrupted after an epoch: it has a best checkpoint
    return root


def test_eval_of_a_run_folder_uses_its_best_checkpoint(runs: Path) -> None:
    outcome = invoke_cli(["eval", runs / "old", "--json"])
    assert outcome.code == 0, outcome.output
    report = json.loads(outcome.stdout)
    assert report["split"] == "test" and report["checkpoint"] == str(runs / "old" / "checkpoints" / "best.npz")
    summary = json.loads((runs / "old" / "summary.json").read_text())
    assert report["accuracy"] == pytest.approx(summary["test_accuracy"]) and report["n"] == 100


def test_eval_without_an_argument_uses_the_newest_completed_run(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(runs.parent)
    outcome = invoke_cli(["eval", "--json"])
    assert outcome.code == 0, outcome.output
    assert json.loads(outcome.stdout)["checkpoint"] == str(Path("runs") / "new" / "checkpoints" / "best.npz")
    text = invoke_cli(["eval"])
    assert text.stdout.splitlines()[0] == f"checkpoint {Path('runs') / 'new' / 'checkpoints' / 'best.npz'}"


def test_eval_with_no_completed_run_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    error_line(invoke_cli(["eval"]), EXIT_BAD_INPUT, "no completed run", "cnn train")


def test_eval_of_a_folder_without_a_checkpoint_is_one_line(runs: Path, tmp_path: Path) -> None:
    error_line(invoke_cli(["eval", runs / "empty"]), EXIT_BAD_INPUT, str(runs / "empty"), "no checkpoints/best.npz yet")
    error_line(invoke_cli(["eval", tmp_path]), EXIT_BAD_INPUT, str(tmp_path), "not a file")  # not a run folder at all


def test_predict_and_viz_take_a_run_folder_as_eval_does(runs: Path, tmp_path: Path) -> None:
    best = runs / "old" / "checkpoints" / "best.npz"
    image = tmp_path / "stroke.png"
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    Image.fromarray(pixels).save(image)
    from_folder = invoke_cli(["predict", image, "--checkpoint", runs / "old", "--json"])
    assert from_folder.code == 0, from_folder.output
    assert json.loads(from_folder.stdout) == json.loads(invoke_cli(["predict", image, "--checkpoint", best, "--json"]).stdout)
    assert from_folder.stderr.splitlines()[0] == f"checkpoint {best}", "predict names the checkpoint it used, on stderr"
    text = invoke_cli(["predict", image, "--checkpoint", runs / "old"])
    assert text.stdout.startswith(f"{image}: ") and text.stderr.splitlines()[0] == f"checkpoint {best}"

    run = Path(shutil.copytree(runs / "old", tmp_path / "old"))  # viz writes into the run: a copy keeps the shared runs clean
    viz = invoke_cli(["viz", run, "test:0"])
    assert viz.code == 0, viz.output
    assert {Path(line).parent for line in viz.stdout.splitlines()} == {run / "plots" / "viz" / "test-0"}
    for command in (["predict", image, "--checkpoint", runs / "empty"], ["viz", runs / "empty", "test:0"]):
        error_line(invoke_cli(command), EXIT_BAD_INPUT, str(runs / "empty"), "no checkpoints/best.npz yet")


def test_eval_split_val_without_a_validation_split_is_one_line(runs: Path) -> None:
    outcome = invoke_cli(["eval", runs / "new", "--split", "val"])
    error_line(outcome, EXIT_BAD_INPUT, "no val split", "val_size is 0", "--split test")


# ---------------------------------------------------------------- OS errors: one line naming the path


def test_viz_out_pointing_at_a_file(runs: Path, tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("keep me")
    outcome = invoke_cli(["viz", runs / "old" / "checkpoints" / "best.npz", "test:0", "--out", target])
    error_line(outcome, EXIT_BAD_INPUT, str(target))
    assert target.read_text() == "keep me"


def test_plots_folder_being_a_file(runs: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs / "old", run)
    (run / "plots").write_text("a file where the plots folder goes")
    error_line(invoke_cli(["plot", run]), EXIT_BAD_INPUT, str(run / "plots"))


def test_run_dir_under_a_regular_file_and_runs_being_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps(tiny_config(make_idx_dataset(tmp_path / "idx", n_train=200, n_test=50), epochs=1)))
    (tmp_path / "a-file").write_text("")
    outcome = invoke_cli(["train", "--config", config, "--run-dir", tmp_path / "a-file" / "run"], timeout=60)
    error_line(outcome, EXIT_BAD_INPUT, str(tmp_path / "a-file" / "run"), "is a file, not a folder")
    monkeypatch.chdir(tmp_path)
    Path("runs").write_text("")
    error_line(invoke_cli(["train", "--config", config], timeout=60), EXIT_BAD_INPUT, "runs")


def test_a_read_only_folder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read-only current folder: ``runs/`` cannot be created (simulated: root may write anywhere)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps(tiny_config(make_idx_dataset(tmp_path / "idx", n_train=200, n_test=50), epochs=1)))
    monkeypatch.chdir(tmp_path)
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if Path(self) == Path("runs"):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    outcome = invoke_cli(["train", "--config", config], timeout=60)
    error_line(outcome, EXIT_BAD_INPUT, "runs: read-only file system")
    debug = CliRunner().invoke(cli, ["--debug", "train", "--config", str(config)])
    assert isinstance(debug.exception, OSError), "--debug shows the real exception"


@pytest.mark.parametrize(
    ("exc", "words", "code"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/x/runs"), "/x/runs: permission denied", EXIT_BAD_INPUT),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "f/run"), "f/run: a part of this path is a file", EXIT_BAD_INPUT),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "out"), "out: is a folder", EXIT_BAD_INPUT),
        (OSError(errno.ENOSPC, "No space left on device", "runs/a"), "runs/a: disk full", EXIT_FAULT),
        (OSError(errno.ENOSPC, "No space left on device"), "while writing or reading a file: disk full; free some space", EXIT_FAULT),
        (OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b"), "a -> b: Invalid cross-device link", EXIT_BAD_INPUT),
    ],
)
def test_os_error_lines(exc: OSError, words: str, code: int) -> None:
    assert os_error_message(exc).startswith(words)
    assert os_error_exit_code(exc) == code
