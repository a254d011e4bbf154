"""Reading user images and turning them into MNIST-like 28×28 inputs.

MNIST digits are light ink on black, size-normalised to fit 20×20 and centred
by centre of mass in a 28×28 frame. :func:`preprocess` does the same to any
PNG/JPEG: grayscale, invert when the ink is dark on a light background, crop to
the ink, scale the longest side to 20 px, centre by centre of mass. An image that
is already 28×28 light-on-dark passes through unchanged (apart from normalisation).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnn_cli.errors import ImageError

MNIST_SIZE = 28
DIGIT_BOX = 20
INK_THRESHOLD = 0.2  # fraction of the ink range that counts as ink for cropping
BLANK_RANGE = 1e-3  # max - min below this: nothing is drawn
WORKING_MAX_SIDE = 512  # huge images are shrunk first; a digit needs no more detail than this


@dataclass
class Prepared:
    """A preprocessed image: (28, 28) float32 in [0, 1], ink = 1, plus any warning."""

    pixels: np.ndarray
    warning: str = ""


def read_grayscale(path: str | Path) -> np.ndarray:
    """Read an image file as a 2-D float array in [0, 1] (0 = black).

    Transparent pixels are composited onto white. 16-bit and float images are
    scaled by their own range. Refuses files above Pillow's pixel limit
    (decompression bombs) before decoding them.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: image not found")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return _to_gray(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: refused, too many pixels for an image to classify ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read (PNG, JPEG, ...)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot decode image ({exc})") from None


def _to_gray(image: Image.Image) -> np.ndarray:
    if max(image.size) > WORKING_MAX_SIDE:
        image = image.copy()
        image.thumbnail((WORKING_MAX_SIDE, WORKING_MAX_SIDE))
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError("it holds NaN or infinite pixel values")
        low, high = float(values.min()), float(values.max())
        return ((values - low) / (high - low) if high > low else np.zeros_like(values)).astype(np.float32)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def preprocess(gray: np.ndarray) -> Prepared:
    """Make a 2-D [0, 1] image MNIST-like: (H, W) -> (28, 28), light ink on black."""
    low, high = float(gray.min()), float(gray.max())
    if high - low < BLANK_RANGE:
        return Prepared(np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32), "image is blank (a single colour); the prediction is meaningless")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    dark_ink_on_light = np.median(border) > 0.5
    if gray.shape == (MNIST_SIZE, MNIST_SIZE) and not dark_ink_on_light:
        return Prepared(gray.astype(np.float32))  # already MNIST-like: unchanged
    ink = 1.0 - gray if dark_ink_on_light else gray
    ink = (ink - ink.min()) / (ink.max() - ink.min())
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return Prepared(np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32), "no ink found in the image; the prediction is meaningless")
    digit = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = digit.shape
    scale = DIGIT_BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(digit.astype(np.float32), mode="F").resize((new_w, new_h), Image.Resampling.BILINEAR))
    resized = np.clip(resized, 0.0, 1.0)
    return Prepared(_centre_by_mass(resized))


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Place ``digit`` in a 28×28 frame so its centre of mass lands on the centre."""
    frame = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    total = digit.sum()
    h, w = digit.shape
    if total <= 0:
        cy, cx = (h - 1) / 2, (w - 1) / 2
    else:
        cy = float((digit.sum(axis=1) * np.arange(h)).sum() / total)
        cx = float((digit.sum(axis=0) * np.arange(w)).sum() / total)
    top = int(round((MNIST_SIZE - 1) / 2 - cy))
    left = int(round((MNIST_SIZE - 1) / 2 - cx))
    top = min(max(top, 0), MNIST_SIZE - h)
    left = min(max(left, 0), MNIST_SIZE - w)
    frame[top : top + h, left : left + w] = digit
    return frame


def load_image(path: str | Path) -> Prepared:
    """Read and preprocess one image file."""
    return preprocess(read_grayscale(path))
