"""Camera images as they arrive (sensor_msgs CompressedImage or Image, duck-typed: no message
package is imported) -> RGB pixels.

A compressed image's size is read from its JPEG/PNG header without decoding, so that an image
of the wrong size is refused for the cost of its header; JPEGs decode at a reduced scale where
the network's input width allows. Malformed input raises :class:`ImageDecodeError` with a
message that names the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from syncl_ros.model.inputs import decode_reduction


class ImageDecodeError(ValueError):
    """An image message cannot be turned into pixels."""


_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers hold the image size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


@dataclass(frozen=True)
class DecodedImage:
    rgb: NDArray[np.uint8]  # (h, w, 3)
    reduction: int  # 1, 2, 4 or 8: full size divided by this (rounded up)
    full_width: int
    full_height: int


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG frame header, without decoding."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ImageDecodeError(f"corrupt JPEG: no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF_MARKERS and i + 9 <= len(data):
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        if marker == 0xDA or length < 2:
            break
        i += 2 + length
    raise ImageDecodeError("corrupt JPEG: no frame header (SOF) before the image data")


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageDecodeError("corrupt PNG: no IHDR header")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _kind(fmt: str, data: bytes) -> str:
    """'jpeg' or 'png' from the bytes, checked against the message's format string."""
    fmt = fmt.lower()
    if "compresseddepth" in fmt:
        raise ImageDecodeError(f"unsupported CompressedImage format {fmt!r} (depth images)")
    claimed = "jpeg" if ("jpeg" in fmt or "jpg" in fmt) else "png" if "png" in fmt else None
    if fmt.strip() and claimed is None:
        raise ImageDecodeError(f"unsupported CompressedImage format {fmt!r}; supported: jpeg, png")
    found = "jpeg" if data.startswith(_JPEG_SOI) else "png" if data.startswith(_PNG_SIGNATURE) else None
    if found is None:
        what = claimed or "JPEG or PNG"
        raise ImageDecodeError(f"corrupt image: {len(data)} bytes that do not start like {what}")
    if claimed is not None and claimed != found:
        raise ImageDecodeError(f"format says {claimed} but the data is {found}")
    return found


def compressed_image_size(msg: Any) -> tuple[int, int]:
    """(width, height) of a CompressedImage from its JPEG or PNG header, without decoding it."""
    data = bytes(msg.data)
    kind = _kind(msg.format, data)
    return _jpeg_size(data) if kind == "jpeg" else _png_size(data)


def decode_compressed_image(msg: Any, min_width: int | None = None) -> DecodedImage:
    """sensor_msgs CompressedImage (JPEG or PNG) -> RGB, decoded at a reduced scale when allowed.

    Decoding a JPEG at 1/2, 1/4 or 1/8 scale skips most of the inverse DCT
    work; the factor keeps the decoded width >= ``min_width`` (e.g. the
    network's input width) so no detail the model uses is lost. The cost
    follows the size in the header: check it (:func:`compressed_image_size`)
    before decoding an image from an untrusted source.
    """
    data = bytes(msg.data)
    kind = _kind(msg.format, data)
    if kind == "jpeg" and not data.rstrip(b"\x00").endswith(_JPEG_EOI):
        raise ImageDecodeError(f"corrupt JPEG: truncated ({len(data)} bytes, no end-of-image marker)")
    width, height = _jpeg_size(data) if kind == "jpeg" else _png_size(data)
    factor = decode_reduction(width, min_width)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _REDUCED_FLAGS[factor])
    if bgr is None or bgr.ndim != 3:
        raise ImageDecodeError(f"corrupt {kind}: OpenCV could not decode {len(data)} bytes")
    rgb = cast("NDArray[np.uint8]", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))  # color flags decode to 8 bits
    return DecodedImage(rgb, factor, width, height)


_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}


def image_to_rgb(msg: Any) -> NDArray[np.uint8]:
    """sensor_msgs Image (rgb8, bgr8, mono8) -> (h, w, 3) uint8 RGB copy."""
    encoding = msg.encoding.lower()
    if encoding not in _CHANNELS:
        supported = ", ".join(_CHANNELS)
        raise ImageDecodeError(f"unsupported image encoding {msg.encoding!r}; supported: {supported}")
    channels = _CHANNELS[encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageDecodeError(f"empty image ({w}x{h})")
    if step < w * channels:
        row = w * channels
        raise ImageDecodeError(f"step {step} is shorter than a {encoding} row of {w} pixels ({row} bytes)")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * h:
        expected = f"step * height = {step} * {h} = {step * h}"
        raise ImageDecodeError(f"data has {data.size} bytes, expected {expected}")
    pixels = data.reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if encoding == "rgb8":
        return pixels.copy()
    if encoding == "bgr8":
        return np.ascontiguousarray(pixels[:, :, ::-1])
    return np.repeat(pixels, 3, axis=2)
