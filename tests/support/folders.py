"""Folder datasets made on the fly: digits drawn with Pillow, one sub-folder per class, no committed binaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# The class folders: names, not digits, so that a test sees the names travel (sorted, they are not in digit order).
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FORMATS = ("png", "jpg", "bmp", "gif", "webp")


def draw_digit(digit: int, rng: np.random.Generator, side: int = 64) -> Image.Image:
    """A digit in dark ink on a light background, as a scan or a photo of one would be: random size, place and slant."""
    image = Image.new("L", (side, side), int(rng.integers(200, 256)))
    font = ImageFont.load_default(size=float(rng.uniform(0.55, 0.8) * side))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font)
    x = (side - (right - left)) / 2 - left + rng.uniform(-0.1, 0.1) * side
    y = (side - (bottom - top)) / 2 - top + rng.uniform(-0.1, 0.1) * side
    draw.text((x, y), str(digit), fill=int(rng.integers(0, 60)), font=font, stroke_width=int(rng.integers(1, 3)))
    return image.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR, fillcolor=int(image.getpixel((0, 0))))  # type: ignore[arg-type]


def write_digit_images(folder: Path, per_class: int, seed: int = 0, first_index: int = 0) -> dict[str, list[Path]]:
    """``per_class`` drawn images of each digit into ``folder/<name>/``, in turn PNG, JPEG, BMP, GIF and WebP."""
    rng = np.random.default_rng(seed)
    written: dict[str, list[Path]] = {}
    for digit, name in enumerate(DIGIT_NAMES):
        class_folder = folder / name
        class_folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = class_folder / f"{name}-{first_index + i:03d}.{FORMATS[(digit + i) % len(FORMATS)]}"
            draw_digit(digit, rng).save(path)
            written.setdefault(name, []).append(path)
    return written


def write_digit_folder(root: Path, per_class: int, *, test_per_class: int = 0, seed: int = 0) -> Path:
    """A 10-class folder dataset of drawn digits: ``root/<name>/``, or with ``test_per_class``
    ``root/train/<name>/`` and ``root/test/<name>/``."""
    if test_per_class:
        write_digit_images(root / "train", per_class, seed)
        write_digit_images(root / "test", test_per_class, seed + 1, first_index=per_class)
    else:
        write_digit_images(root, per_class, seed)
    return root


def write_bad_files(folder: Path) -> list[Path]:
    """Three files that are no image: text, a truncated PNG, an empty file; returned in sorted order."""
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "notes.txt"
    text.write_text("not an image\n")
    truncated = folder / "cut.png"
    draw_digit(3, np.random.default_rng(1)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    return sorted([text, truncated, empty])
