"""An uploaded image, taken in safely: its size, its pixel count and how many are decoded at once are bounded.

A PNG of a few hundred kilobytes can declare 9000×9000 pixels; decoding it takes
hundreds of megabytes. So the request body is read up to :data:`MAX_UPLOAD_BYTES`
(whatever the transfer encoding), the image's header alone is read to refuse more
than :data:`MAX_PIXELS` pixels before anything is decoded, and at most
:data:`MAX_CONCURRENT_DECODES` images are decoded and analysed at the same time
(the others wait, then are told the server is busy).
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Request, abort
from PIL import Image, UnidentifiedImageError

MAX_UPLOAD_BYTES = 4 << 20  # a digit photo needs far less; bigger bodies get 413
# An 8-megapixel photo (3264×2448) passes; decoded as RGBA it takes 32 MB, and the decode makes a copy or two.
MAX_PIXELS = 8_000_000
MAX_CONCURRENT_DECODES = 2
DECODE_WAIT_S = 10.0  # how long a request waits for a decode slot before 503


def _mebibytes(count: int) -> str:
    return f"{count / (1 << 20):g} MiB"


def too_large_message(size: int | None = None) -> str:
    """The 413 text: what was sent (when known) and the limit."""
    sent = f"the upload is {size:,} bytes; " if size is not None else "the upload is too large: "
    return f"{sent}the limit is {_mebibytes(MAX_UPLOAD_BYTES)} ({MAX_UPLOAD_BYTES:,} bytes) per image"


def read_upload(request: Request) -> bytes:
    """The image bytes of an upload: the ``image`` part of a multipart form, else the raw body.

    Any other content type, ``application/x-www-form-urlencoded`` included (what
    ``curl --data-binary @digit.png`` sends), is read as the raw image bytes.
    A body over :data:`MAX_UPLOAD_BYTES`, chunked or not, is answered 413.
    """
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("image")
        data = upload.read(MAX_UPLOAD_BYTES + 1) if upload is not None else b""
    else:
        # The app's MAX_CONTENT_LENGTH is one byte above the limit: reading one more byte than
        # allowed tells a too-large chunked body from one exactly at the limit.
        data = request.stream.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        abort(413, description=too_large_message(request.content_length))
    if not data:
        abort(400, description="no image in the request body (send PNG or JPEG bytes)")
    return data


def check_pixels(data: bytes) -> None:
    """Refuse an image that declares more than :data:`MAX_PIXELS` pixels, reading only its header.

    Bytes Pillow cannot identify pass: decoding them gives the precise error later.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:  # lazy: reads the header, decodes nothing
                width, height = (int(side) for side in image.size)
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        abort(400, description=f"uploaded image: refused, too many pixels (the limit is {MAX_PIXELS / 1e6:g} megapixels)")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return
    if width * height > MAX_PIXELS:
        abort(
            400,
            description=f"uploaded image: refused, too many pixels ({width}×{height} = {width * height / 1e6:.1f} megapixels; "
            f"the limit is {MAX_PIXELS / 1e6:g}): shrink it first",
        )


class DecodeSlots:
    """At most ``count`` image decodes and analyses at a time; a request that waits too long gets 503."""

    def __init__(self, count: int = MAX_CONCURRENT_DECODES, wait_s: float = DECODE_WAIT_S) -> None:
        self._slots = threading.BoundedSemaphore(count)
        self._wait_s = wait_s

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self._wait_s):
            abort(503, description="the server is busy decoding other images; try again in a moment")
        try:
            yield
        finally:
            self._slots.release()
