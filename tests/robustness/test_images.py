"""Odd and broken images for ``cnn predict`` (issue 6, cases 17-20).

A bad image gets one ``error:`` line naming it; the other images of the same
call are still predicted, and the exit code (2) says that one failed.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_cli.config.build import config_from_dict
from cnn_cli.data.images import MNIST_SIZE, load_image
from cnn_cli.training.train import train
from tests.support.cli import EXIT_BAD_INPUT, EXIT_FAULT, Outcome, invoke_cli, run_cli
from tests.support.synthetic import make_idx_dataset, tiny_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    paths = make_idx_dataset(folder / "idx", n_train=300, n_test=100)
    result = train(config_from_dict(tiny_config(paths, epochs=1)), run_dir=folder / "run", log=lambda _line: None)
    return result.run.best


def digit_pixels(height: int = 60, width: int = 40) -> np.ndarray:
    """A dark vertical stroke on white, as a phone photo of a "1" might look: uint8 (H, W)."""
    pixels = np.full((height, width), 255, np.uint8)
    pixels[height // 6 : height - height // 6, width // 2 - 3 : width // 2 + 3] = 0
    return pixels


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def gray_png(pixels: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG written directly (fast even for tens of megapixels)."""
    height, width = pixels.shape
    rows = np.zeros((height, width + 1), np.uint8)  # each row starts with filter type 0
    rows[:, 1:] = pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)) + png_chunk(b"IEND", b"")
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds none: a decompression bomb's calling card."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


def predicted(outcome: Outcome) -> dict[str, int]:
    """Image path -> predicted digit, from the plain-text output."""
    result = {}
    for line in outcome.stdout.splitlines():
        path, rest = line.split(": ", 1)  # "<path>: <digit>   (<top-k>)"
        result[path] = int(rest.split()[0])
    return result


def check_clean(outcome: Outcome) -> None:
    assert "Traceback" not in outcome.output, outcome.output


DOUBT = ("low confidence", "unlike an MNIST digit")  # doubt warnings: the tiny test model is unsure of a stroke, rightly


def reported(outcome: Outcome) -> list[str]:
    """stderr lines other than doubt warnings and the checkpoint's name, which these tests of broken files do not look at."""
    lines = outcome.stderr.splitlines()
    return [
        line
        for line in lines
        if not (line.startswith("warning: ") and any(d in line for d in DOUBT)) and not line.startswith("checkpoint ")
    ]


@pytest.fixture
def good_images(tmp_path: Path) -> list[Path]:
    first, second = tmp_path / "one.png", tmp_path / "one-photo.jpg"
    Image.fromarray(digit_pixels()).save(first)
    Image.fromarray(digit_pixels(90, 50)).convert("RGB").save(second, quality=95)
    return [first, second]


def bad_images(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, words its error must contain)."""
    Image.fromarray(digit_pixels()).save(folder / "whole.png")
    whole = (folder / "whole.png").read_bytes()
    files = {
        "text file": ("notes.png", b"shopping list: milk, eggs\n", "not an image Pillow can read"),
        "truncated png": ("cut.png", whole[: len(whole) // 2], "cannot decode image"),
        "png header only": ("header.png", whole[:40], "not an image Pillow can read"),
        "empty file": ("empty.png", b"", "empty file"),
        "jpeg named png": ("fake.png", b"\xff\xd8\xff\xe0" + b"\x00" * 20, "not an image Pillow can read"),
    }
    out = {}
    for name, (file_name, data, words) in files.items():
        (folder / file_name).write_bytes(data)
        out[name] = (folder / file_name, words)
    out["missing"] = (folder / "nowhere.png", "image not found")
    (folder / "a-folder.png").mkdir()
    out["folder"] = (folder / "a-folder.png", "no image files")  # a folder is searched for images; this one holds none
    return out


# ---------------------------------------------------------------- case 17: broken images


@pytest.mark.parametrize("case", ["text file", "truncated png", "png header only", "empty file", "jpeg named png", "missing", "folder"])
def test_a_broken_image_fails_alone(tmp_path: Path, checkpoint: Path, good_images: list[Path], case: str) -> None:
    bad, words = bad_images(tmp_path)[case]
    alone = invoke_cli(["predict", *good_images, "--checkpoint", checkpoint])
    assert alone.code == 0 and reported(alone) == [], alone.output

    mixed = invoke_cli(["predict", good_images[0], bad, good_images[1], "--checkpoint", checkpoint])
    check_clean(mixed)
    assert mixed.code == EXIT_FAULT, mixed.output  # some predicted, one failed
    assert predicted(mixed) == predicted(alone), "the good images are still predicted, the same way"
    lines = reported(mixed)
    assert len(lines) == 1, mixed.stderr
    assert lines[0].startswith(f"error: {bad}: "), lines[0]
    assert words in lines[0]


def test_every_broken_image_gets_its_own_line(tmp_path: Path, checkpoint: Path, good_images: list[Path]) -> None:
    bad = [path for path, _ in bad_images(tmp_path).values()]
    outcome = invoke_cli(["predict", good_images[0], *bad, good_images[1], "--checkpoint", checkpoint, "--json"])
    check_clean(outcome)
    assert outcome.code == EXIT_FAULT
    lines = reported(outcome)
    assert [line.split(": ")[1] for line in lines] == [str(p) for p in bad], lines
    results = json.loads(outcome.stdout)
    assert [r["path"] for r in results] == [str(p) for p in [good_images[0], *bad, good_images[1]]]
    assert all(r["prediction"] is not None for r in (results[0], results[-1]))
    assert all(r["prediction"] is None and r["error"] for r in results[1:-1])


@pytest.mark.parametrize("optimize", [False, True], ids=["python", "python -O"])
def test_broken_images_in_a_real_process(tmp_path: Path, checkpoint: Path, good_images: list[Path], optimize: bool) -> None:
    cases = bad_images(tmp_path)
    truncated, empty = cases["truncated png"][0], cases["empty file"][0]
    outcome = run_cli(["predict", good_images[0], truncated, empty, "--checkpoint", checkpoint], optimize=optimize)
    check_clean(outcome)
    assert outcome.code == EXIT_FAULT, outcome.output
    assert list(predicted(outcome)) == [str(good_images[0])]
    assert [line.split(": ")[1] for line in reported(outcome)] == [str(truncated), str(empty)]


# ---------------------------------------------------------------- case 18: decompression bombs


@pytest.mark.parametrize(("width", "height"), [(10_000, 10_000), (30_000, 30_000)], ids=["above the limit", "far above"])
def test_decompression_bomb_is_refused_without_decoding(
    tmp_path: Path, checkpoint: Path, good_images: list[Path], width: int, height: int
) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(width, height))
    started = time.perf_counter()
    outcome = invoke_cli(["predict", bomb, good_images[0], "--checkpoint", checkpoint])
    assert time.perf_counter() - started < 5
    check_clean(outcome)
    assert outcome.code == EXIT_FAULT  # the bomb failed, the good image was predicted
    assert list(predicted(outcome)) == [str(good_images[0])]
    lines = reported(outcome)
    assert len(lines) == 1 and lines[0].startswith(f"error: {bomb}: refused, too many pixels"), lines


def test_decompression_bomb_refused_by_a_real_process_under_python_O(tmp_path: Path, checkpoint: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(20_000, 20_000))
    outcome = run_cli(["predict", bomb, "--checkpoint", checkpoint], optimize=True)
    check_clean(outcome)
    assert outcome.code == EXIT_BAD_INPUT
    assert outcome.stderr.startswith(f"error: {bomb}: refused, too many pixels")


# ---------------------------------------------------------------- case 19: unusual formats


def _save(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


def encodings(folder: Path) -> dict[str, Path]:
    """The same dark-on-light digit in many modes and formats."""
    pixels = digit_pixels()
    gray = Image.fromarray(pixels)
    rgba = np.zeros((*pixels.shape, 4), np.uint8)
    rgba[..., 3] = 255 - pixels  # black ink, fully transparent background
    palette_with_transparency = gray.convert("P")
    palette_with_transparency.info["transparency"] = int(np.asarray(palette_with_transparency)[0, 0])
    return {
        "L": _save(gray, folder / "gray.png"),
        "RGB": _save(gray.convert("RGB"), folder / "rgb.png"),
        "RGBA on transparent": _save(Image.fromarray(rgba, "RGBA"), folder / "rgba.png"),
        "LA": _save(gray.convert("LA"), folder / "la.png"),
        "palette": _save(gray.convert("P"), folder / "palette.png"),
        "palette with transparency": _save(palette_with_transparency, folder / "palette-t.png"),
        "16-bit": _save(Image.fromarray(pixels.astype(np.uint16) * 257), folder / "sixteen.png"),
        "32-bit int": _save(Image.fromarray(pixels.astype(np.int32) * 1000, "I"), folder / "int32.tiff"),
        "float": _save(Image.fromarray(pixels.astype(np.float32) / 255, "F"), folder / "float.tiff"),
        "bilevel": _save(gray.convert("1"), folder / "bilevel.png"),
        "CMYK jpeg": _save(gray.convert("CMYK"), folder / "cmyk.jpg"),
        "GIF": _save(gray.convert("P"), folder / "digit.gif"),
    }


@pytest.mark.parametrize(
    "mode",
    [
        "RGB",
        "RGBA on transparent",
        "LA",
        "palette",
        "palette with transparency",
        "16-bit",
        "32-bit int",
        "float",
        "bilevel",
        "CMYK jpeg",
        "GIF",
    ],
)
def test_other_modes_preprocess_like_plain_grayscale(tmp_path: Path, mode: str) -> None:
    files = encodings(tmp_path)
    reference = load_image(files["L"])
    prepared = load_image(files[mode])
    assert prepared.warning == ""
    assert prepared.pixels.shape == (MNIST_SIZE, MNIST_SIZE) and prepared.pixels.dtype == np.float32
    tolerance = 0.1 if mode == "CMYK jpeg" else 1e-2  # JPEG is lossy
    np.testing.assert_allclose(prepared.pixels, reference.pixels, atol=tolerance)


def test_every_mode_is_predicted_in_one_call(tmp_path: Path, checkpoint: Path) -> None:
    files = list(encodings(tmp_path).values())
    outcome = invoke_cli(["predict", *files, "--checkpoint", checkpoint, "--json"])
    check_clean(outcome)
    assert outcome.code == 0 and reported(outcome) == [], outcome.output
    results = json.loads(outcome.stdout)
    assert len(results) == len(files)
    assert len({r["prediction"] for r in results}) == 1, "every encoding of the same digit gets the same answer"


@pytest.mark.parametrize(
    ("shape", "fill"),
    [((1, 2), None), ((2, 1), None), ((1, 1000), None), ((1000, 1), None), ((3, 3), "centre")],
    ids=["1x2", "2x1", "1x1000", "1000x1", "3x3 dot"],
)
def test_tiny_and_extreme_aspect_images(tmp_path: Path, checkpoint: Path, shape: tuple[int, int], fill) -> None:
    pixels = np.full(shape, 255, np.uint8)
    if fill == "centre":
        pixels[1, 1] = 0
    else:
        pixels.flat[: pixels.size // 2] = 0
    path = tmp_path / "odd.png"
    Image.fromarray(pixels).save(path)
    prepared = load_image(path)
    assert prepared.pixels.shape == (MNIST_SIZE, MNIST_SIZE)
    assert np.isfinite(prepared.pixels).all() and prepared.pixels.max() > 0
    outcome = invoke_cli(["predict", path, "--checkpoint", checkpoint])
    check_clean(outcome)
    assert outcome.code == 0, outcome.output


def test_one_pixel_image_is_handled(tmp_path: Path, checkpoint: Path) -> None:
    path = tmp_path / "pixel.png"
    Image.new("L", (1, 1), 0).save(path)
    outcome = invoke_cli(["predict", path, "--checkpoint", checkpoint])
    check_clean(outcome)
    assert outcome.code == 0, outcome.output
    assert reported(outcome)[0].startswith(f"warning: {path}: image is blank"), outcome.stderr


def test_huge_but_legal_image_is_handled(tmp_path: Path, checkpoint: Path) -> None:
    side = 8000  # 64 megapixels, below Pillow's limit of about 89
    pixels = np.full((side, side), 255, np.uint8)
    pixels[side // 8 : -side // 8, side // 2 - side // 20 : side // 2 + side // 20] = 0
    path = tmp_path / "scan.png"
    path.write_bytes(gray_png(pixels))
    small = tmp_path / "small.png"
    Image.fromarray(pixels[::200, ::200]).save(small)
    outcome = invoke_cli(["predict", path, small, "--checkpoint", checkpoint])
    check_clean(outcome)
    assert outcome.code == 0 and reported(outcome) == [], outcome.output
    answers = predicted(outcome)
    assert answers[str(path)] == answers[str(small)]


@pytest.mark.parametrize("value", [np.inf, np.nan], ids=["inf", "nan"])
def test_float_image_with_a_non_finite_pixel_never_crashes(tmp_path: Path, checkpoint: Path, good_images: list[Path], value: float) -> None:
    """Float TIFFs are read by their own range; one bad pixel must give a reason, not a traceback."""
    pixels = digit_pixels().astype(np.float32) / 255
    pixels[0, 0] = value
    path = _save(Image.fromarray(pixels, "F"), tmp_path / "float.tiff")
    outcome = invoke_cli(["predict", good_images[0], path, "--checkpoint", checkpoint])
    check_clean(outcome)
    assert outcome.code in (0, EXIT_FAULT), outcome.output
    assert str(good_images[0]) in predicted(outcome), "the good image is still predicted"
    if outcome.code == EXIT_FAULT:
        assert reported(outcome)[0].startswith(f"error: {path}: ") and len(reported(outcome)) == 1
    else:
        assert "blank" not in outcome.stderr, f"a digit with one odd pixel is not blank: {outcome.stderr}"


# ---------------------------------------------------------------- case 20: blank images


def blank_images(folder: Path) -> list[Path]:
    transparent = np.zeros((30, 30, 4), np.uint8)
    return [
        _save(Image.new("L", (40, 40), 255), folder / "white.png"),
        _save(Image.new("L", (28, 28), 0), folder / "black.png"),
        _save(Image.new("RGB", (50, 20), (128, 128, 128)), folder / "grey.jpg"),
        _save(Image.fromarray(transparent, "RGBA"), folder / "transparent.png"),
        _save(Image.fromarray(np.full((20, 20), 7, np.uint16)), folder / "flat16.png"),
    ]


def test_blank_images_get_a_warning_not_a_crash(tmp_path: Path, checkpoint: Path, good_images: list[Path]) -> None:
    blanks = blank_images(tmp_path)
    outcome = invoke_cli(["predict", good_images[0], *blanks, "--checkpoint", checkpoint])
    check_clean(outcome)
    assert outcome.code == 0, outcome.output
    assert list(predicted(outcome)) == [str(good_images[0]), *map(str, blanks)]
    lines = reported(outcome)
    assert lines == [f"warning: {p}: image is blank (a single colour); the prediction is meaningless" for p in blanks]


def test_blank_image_warning_in_json_and_in_a_real_process(tmp_path: Path, checkpoint: Path) -> None:
    blank = blank_images(tmp_path)[0]
    outcome = run_cli(["predict", blank, "--checkpoint", checkpoint, "--json"], optimize=True)
    check_clean(outcome)
    assert outcome.code == 0, outcome.output
    (result,) = json.loads(outcome.stdout)
    assert "blank" in result["warning"] and result["prediction"] is not None
    assert outcome.stderr.splitlines()[0] == f"checkpoint {checkpoint}"
    assert reported(outcome)[0].startswith(f"warning: {blank}: image is blank"), outcome.stderr


def test_faint_but_not_blank_image_is_preprocessed(tmp_path: Path) -> None:
    pixels = np.zeros((28, 28), np.uint8)
    pixels[10:18, 13:15] = 3  # barely visible ink, still ink
    path = _save(Image.fromarray(pixels), tmp_path / "faint.png")
    prepared = load_image(path)
    assert prepared.warning == ""
    assert prepared.pixels.max() > 0 and np.isfinite(prepared.pixels).all()
