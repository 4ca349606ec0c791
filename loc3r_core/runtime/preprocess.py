"""Camera images to the model's input: the same resize training used, on a centred square crop."""

from __future__ import annotations

import numpy as np
from PIL import Image

from loc3r_core.errors import DataError
from loc3r_core.geometry import Intrinsics


def model_image(rgb: np.ndarray, size: int, intrinsics: Intrinsics | None = None) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, size, size) float32 in [0, 1].

    Training frames are square, so a wider image is cropped to a square around the principal
    point (the optical axis stays in the middle, as in training) before the bilinear resize.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) == 0:
        raise DataError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.dtype} {tuple(rgb.shape)}")
    left, top, side = square_crop(rgb.shape[1], rgb.shape[0], intrinsics)
    square = rgb[top:top + side, left:left + side]
    if side != size:
        square = np.asarray(Image.fromarray(square).resize((size, size), Image.BILINEAR))
    return np.ascontiguousarray(square.transpose(2, 0, 1), dtype=np.float32) / 255.0


def square_crop(width: int, height: int, intrinsics: Intrinsics | None = None) -> tuple[int, int, int]:
    """(left, top, side) of the square model_image crops from a width x height image: as large as
    the image allows, centred on the principal point where it fits."""
    side = min(height, width)
    cx = intrinsics.cx if intrinsics is not None else width / 2
    cy = intrinsics.cy if intrinsics is not None else height / 2
    left = int(np.clip(round(cx - side / 2), 0, width - side))
    top = int(np.clip(round(cy - side / 2), 0, height - side))
    return left, top, side


def quantised_image(rgb: np.ndarray, size: int, intrinsics: Intrinsics | None = None) -> np.ndarray:
    """model_image held as (3, size, size) uint8 (times 255): how frames are kept in memory for
    training, and so what the visual odometry network is fed at run time too."""
    return np.round(model_image(rgb, size, intrinsics) * 255).astype(np.uint8)
