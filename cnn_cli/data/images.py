"""Reading user images and turning them into MNIST-like 28×28 inputs.

MNIST digits are light ink on black, size-normalised to fit 20×20 and centred
by centre of mass in a 28×28 frame. :func:`preprocess` does the same to any
PNG/JPEG: grayscale, invert when the ink is dark on a light background, flatten
the background, crop to the ink, scale the longest side to 20 px, centre by
centre of mass. An image that is already 28×28 light-on-dark passes through
unchanged (apart from normalisation).

Photos are stored rotated with an EXIF orientation tag more often than not; the
tag is applied on reading (Pillow's ``ImageOps.exif_transpose``), so the digit is
upright as any viewer shows it. Photos are also unevenly lit: a brightness
gradient across the paper would survive a plain min-max stretch as a grey box
around the digit. :func:`flatten_background` fits a smooth surface (quadratic in
x and y) to the paper only, robustly (pixels far on the ink side are left out and
the fit repeated), and subtracts it; what little is left below
:data:`INK_THRESHOLD` of the ink's peak is set to 0, as MNIST's background is.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnn_cli.bounded_read import open_regular
from cnn_cli.errors import ImageError

MNIST_SIZE = 28
DIGIT_BOX = 20
INK_THRESHOLD = 0.2  # fraction of the ink range that counts as ink for cropping
BLANK_RANGE = 1e-3  # max - min below this: nothing is drawn
WORKING_MAX_SIDE = 512  # huge images are shrunk first; a digit needs no more detail than this
MAX_STDIN_BYTES = 64 << 20  # an image piped to `cnn predict -` larger than this is refused unread
MAX_IMAGE_BYTES = MAX_STDIN_BYTES  # the same cap for an image file
BACKGROUND_SAMPLES = 4096  # pixels the background fit looks at (a regular subsample of the image)
BACKGROUND_ROUNDS = 4  # fit, drop the ink-side outliers, fit again


@dataclass
class Prepared:
    """A preprocessed image: (28, 28) float32 in [0, 1], ink = 1, plus any warning."""

    pixels: np.ndarray
    warning: str = ""


def read_grayscale(path: str | Path) -> np.ndarray:
    """Read an image file as a 2-D float array in [0, 1] (0 = black), upright as its EXIF tag says.

    Transparent pixels are composited onto white. 16-bit and float images are
    scaled by their own range. Refuses files above Pillow's pixel limit
    (decompression bombs) before decoding them.
    """
    path = Path(path)
    with open_regular(path, MAX_IMAGE_BYTES, "image", ImageError) as handle:  # a FIFO or device: refused, never waited on
        if os.fstat(handle.fileno()).st_size == 0:
            raise ImageError(f"{path}: empty file")
        return _decode(handle, str(path))


def read_grayscale_bytes(data: bytes, name: str = "-") -> np.ndarray:
    """:func:`read_grayscale` for an image held in memory (``cnn predict -`` reads stdin); ``name`` labels errors."""
    if not data:
        raise ImageError(f"{name}: empty input (no image bytes)")
    return _decode(io.BytesIO(data), name)


def _decode(handle: IO[bytes], name: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": Pillow reads on, so do we, without stderr noise
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                image.load()
                return _to_gray(_upright(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: refused, too many pixels for an image to classify ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read (PNG, JPEG, ...)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: cannot decode image ({exc})") from None


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag (phone photos are stored rotated); a broken tag leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(image) or image
    except (SyntaxError, ValueError, KeyError, TypeError, struct.error, OSError):
        return image


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
    ink = flatten_background(1.0 - gray if dark_ink_on_light else gray)
    peak = float(ink.max())
    if peak < BLANK_RANGE:
        return Prepared(np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32), "no ink found in the image; the prediction is meaningless")
    ink = np.clip((ink / peak - INK_THRESHOLD) / (1.0 - INK_THRESHOLD), 0.0, 1.0)  # the paper becomes exactly 0
    rows = np.flatnonzero((ink > 0).any(axis=1))
    cols = np.flatnonzero((ink > 0).any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return Prepared(np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32), "no ink found in the image; the prediction is meaningless")
    digit = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = digit.shape
    scale = DIGIT_BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(digit.astype(np.float32), mode="F").resize((new_w, new_h), Image.Resampling.BILINEAR))
    resized = np.clip(resized, 0.0, 1.0)
    return Prepared(_centre_by_mass(resized))


def flatten_background(ink: np.ndarray) -> np.ndarray:
    """(H, W) ink image (ink high) -> the same minus a smooth background surface, clipped at 0.

    The surface is b0 + b1·y + b2·x + b3·y² + b4·xy + b5·x², least-squares fitted to
    a subsample of the pixels, first to the fainter half of them (the paper: a digit
    covers less than half of its image); after each round the pixels more than 2.5 robust
    standard deviations (1.4826 × median absolute deviation) above it, the ink,
    are left out of the next. Uneven lighting, a shadow or vignetting go; strokes stay.
    """
    h, w = ink.shape
    if h < 4 or w < 4:
        return np.clip(ink - ink.min(), 0.0, None)
    step = max(1, int(np.sqrt(h * w / BACKGROUND_SAMPLES)))

    def design(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        y, x = ys / (h - 1) - 0.5, xs / (w - 1) - 0.5
        return np.stack([np.ones_like(y), y, x, y * y, x * y, x * x], axis=-1)

    ys, xs = np.mgrid[0:h:step, 0:w:step].astype(np.float64)
    basis, values = design(ys, xs).reshape(-1, 6), ink[::step, ::step].astype(np.float64).ravel()
    keep = values <= np.median(values)  # start from the paper: the fainter half of the pixels (a digit covers less)
    coef = np.zeros(6)
    for _ in range(BACKGROUND_ROUNDS):
        coef = np.linalg.lstsq(basis[keep], values[keep], rcond=None)[0]
        residual = values - basis @ coef
        centre = np.median(residual[keep])
        spread = 1.4826 * np.median(np.abs(residual[keep] - centre))
        paper = residual < centre + max(2.5 * spread, 0.02)
        if paper.sum() < 4 * basis.shape[1] or np.array_equal(paper, keep):
            break
        keep = paper
    full_y, full_x = np.mgrid[0:h, 0:w].astype(np.float64)
    background = np.maximum(design(full_y, full_x) @ coef, float(ink.min()))  # never below the faintest pixel: no ink out of nothing
    return np.clip(ink - background, 0.0, None).astype(np.float32)


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


def ink_fraction(pixels: np.ndarray) -> float:
    """Fraction of a prepared 28×28 image's pixels that are ink (> 0.5); MNIST digits: 3% to 30% (0.1 and 99.9 percentiles)."""
    return float((pixels > 0.5).mean())
