"""Decode ROS image payloads (sensor_msgs Image / CompressedImage fields) into RGB arrays.

No ROS import: the functions take the messages' plain fields, so the bag reader (rosbags
messages) and a live ROS node (rclpy messages) share them.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from loc3r_core.errors import DataError

SUPPORTED_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
# OpenCV type names some drivers put in `encoding`; 3-channel 8-bit means BGR in OpenCV.
_ALIASES = {"8uc3": "bgr8", "8uc1": "mono8"}
_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


def _as_uint8(data: object) -> np.ndarray:
    """A flat uint8 view of bytes, bytearray, memoryview, array.array('B') (rclpy), ndarray or a list."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)  # the raw bytes, whatever the dtype
    try:
        return np.frombuffer(data, dtype=np.uint8)  # zero-copy for anything with the buffer protocol
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def normalize_encoding(encoding: str) -> str:
    """The canonical name of a supported encoding ("8UC3" -> "bgr8"); DataError if unsupported."""
    name = encoding.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in _CHANNELS:
        raise DataError(f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
                        " (and 8UC3 as bgr8, 8UC1 as mono8)")
    return name


def decode_raw_image(encoding: str, height: int, width: int, step: int, data: object,
                     is_bigendian: int = 0) -> np.ndarray:
    """A sensor_msgs/Image payload as an (H, W, 3) uint8 RGB array that owns its memory.

    `step` is the row length in bytes and may exceed width * channels (row padding).
    `is_bigendian` is accepted for the message's sake; it does not matter for 8-bit channels.
    """
    del is_bigendian  # every supported encoding has 1-byte channels
    name = normalize_encoding(encoding)
    channels = _CHANNELS[name]
    if height <= 0 or width <= 0:
        raise DataError(f"image of {width}x{height} pixels ({encoding}): width and height must be positive")
    if step < width * channels:
        raise DataError(f"image step {step} is less than width {width} x {channels} bytes per pixel ({encoding})")
    flat = _as_uint8(data)
    if flat.size != step * height:
        raise DataError(f"image data has {flat.size} bytes, expected step {step} x height {height} = "
                        f"{step * height} ({width}x{height} {encoding})")
    pixels = flat.reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if name == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if name in ("bgr8", "bgra8"):
        return pixels[:, :, 2::-1].copy()
    return pixels[:, :, :3].copy()  # a copy: the message's buffer may be reused or read-only


def decode_compressed_image(format: str, data: object) -> np.ndarray:
    """A sensor_msgs/CompressedImage payload (JPEG or PNG) as an (H, W, 3) uint8 RGB array.

    Pillow finds the codec from the bytes; `format` only serves to reject depth images
    ("compressedDepth"), whose 16-bit values are not colours. image_transport encodes with
    OpenCV, which writes true-colour files whatever the "bgr8; jpeg compressed bgr8" prefix says.
    """
    if "compresseddepth" in format.replace(" ", "").lower():
        raise DataError(f"compressed image format {format!r} is a depth image, not a colour one")
    payload = _as_uint8(data).tobytes()
    if not payload:
        raise DataError(f"compressed image ({format or 'no format'}) has no data")
    try:
        with Image.open(io.BytesIO(payload)) as image:
            image.load()  # decode now so truncated data fails here, not later
            if image.mode in ("I;16", "I;16B", "I", "F"):
                raise DataError(f"compressed image ({format}) is {image.mode} (16-bit or float), not a colour image")
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"compressed image ({format or 'no format'}, {len(payload)} bytes) cannot be decoded: "
                        f"{exc}") from exc
