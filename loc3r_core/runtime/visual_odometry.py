"""Odometry from the camera alone: the motion network's steps, chained, through ONNX Runtime.

A robot without wheel odometry still gives the model a prior (the camera's pose relative to the
memory's anchor), as `loc3r eval --prior visual` measures it. Each frame is compared with a
reference frame, not simply the previous one: the reference moves on only once the camera has
moved by about a tenth of a training step, so a camera that stands still or a fast frame rate
does not chain many tiny readings (and their small biases) into drift. A network that also reads
each frame's heading against the room's walls (modulo 90 degrees) keeps the chain's heading from
drifting: every pose is snapped to it (`room_axes`; off for buildings whose walls do not meet at
right angles).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from loc3r_core.errors import DataError
from loc3r_core.geometry import Intrinsics, chain_step
from loc3r_core.runtime.preprocess import quantised_image
from loc3r_core.runtime.spec import file_sha256, read_json

SHIPPED_MOTION = Path(__file__).resolve().parent.parent / "checkpoints" / "loc3r-motion"
CONFIG_FILE, WEIGHTS_FILE = "motion_config.json", "motion.safetensors"
MOTION_ONNX, MOTION_MANIFEST = "motion.onnx", "motion_onnx.json"


def room_heading(reading: np.ndarray) -> np.ndarray:
    """(..., 2) the network's (cos 4a, sin 4a) reading -> (...,) the heading a in [-45, 45) degrees."""
    return np.arctan2(reading[..., 1], reading[..., 0]) / 4


class StepReader:
    """motion.onnx: (previous, current) frames in [0, 1] -> the current camera's (forward m, left m,
    turn rad) in the previous one's axes, and (room_heading) its heading against the room's walls."""

    def __init__(self, folder: Path | None = None, provider: str = "CPUExecutionProvider") -> None:
        self.folder = SHIPPED_MOTION if folder is None else Path(folder)
        if not (self.folder / MOTION_MANIFEST).is_file():
            raise DataError(f"{self.folder} holds no exported motion network ({MOTION_MANIFEST} is missing): "
                            f"run `loc3r export-motion --motion {self.folder}`")
        manifest = read_json(self.folder / MOTION_MANIFEST)
        for key, name in (("onnx_sha256", MOTION_ONNX), ("weights_sha256", WEIGHTS_FILE)):
            if manifest.get(key) != file_sha256(self.folder / name):
                raise DataError(f"{self.folder / MOTION_ONNX} was not exported from {self.folder / WEIGHTS_FILE}: "
                                f"re-run `loc3r export-motion --motion {self.folder}`")
        config = read_json(self.folder / CONFIG_FILE)
        self.image_size = config.get("image_size")
        if not isinstance(self.image_size, int) or self.image_size < 32:
            raise DataError(f"{self.folder / CONFIG_FILE} gives no usable image_size ({self.image_size!r})")
        self.room_heading = bool(config.get("room_heading", False))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # its idle threads must not spin: between readings the model's own backend (PyTorch's
        # threads, or another ONNX Runtime session) runs on the same cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.folder / MOTION_ONNX), options, providers=[provider])
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            raise DataError(f"{self.folder / MOTION_ONNX} cannot be loaded: {str(exc).splitlines()[0]}") from None

    def readings(self, previous: np.ndarray, current: np.ndarray) -> np.ndarray:
        """(B, 3, S, S) each -> (B, 3) float64 steps, then with room_heading the (B, 2) heading reading."""
        feed = {"previous": previous.astype(np.float32), "current": current.astype(np.float32)}
        return self.session.run(None, feed)[0].astype(np.float64)

    def step(self, previous: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, float | None]:
        """One pair of (3, S, S) frames -> the step (3,) and the current frame's room heading (None without)."""
        reading = self.readings(previous[None], current[None])[0]
        return reading[:3], (float(room_heading(reading[3:])) if self.room_heading else None)

    def frame(self, rgb: np.ndarray, intrinsics: Intrinsics | None = None) -> np.ndarray:
        """(H, W, 3) uint8 -> (3, S, S) as training fed the network: model_image, held as uint8."""
        return quantised_image(rgb, self.image_size, intrinsics) / np.float32(255.0)


class VisualOdometry:
    """Planar camera poses (x, y, heading) in its own odometry frame: the first frame's pose is the origin."""

    def __init__(self, reader: StepReader, min_travel: float = 0.015, min_turn: float = 0.025,
                 room_axes: bool = True) -> None:
        self.reader = reader
        self.min_travel, self.min_turn = min_travel, min_turn  # metres, radians: when the reference moves on
        self.room_axes = room_axes and reader.room_heading  # snap headings to the room's (if the network reads it)
        self.reset()

    def reset(self) -> None:
        self.reference: np.ndarray | None = None  # (3, S, S) the frame steps are read against
        self.reference_pose = np.zeros(3)
        self.first_heading = 0.0  # the chain's first frame's heading against the room

    @property
    def started(self) -> bool:
        """Whether it has seen a frame since its last reset."""
        return self.reference is not None

    def update(self, rgb: np.ndarray, intrinsics: Intrinsics | None = None) -> np.ndarray:
        """This frame's pose (3,)."""
        frame = self.reader.frame(rgb, intrinsics)
        if self.reference is None:
            self.reference = frame
            if self.room_axes:
                self.first_heading = self.reader.step(frame, frame)[1]
            return self.reference_pose.copy()
        step, heading = self.reader.step(self.reference, frame)
        pose = chain_step(self.reference_pose, step, heading - self.first_heading if self.room_axes else None)
        if np.hypot(step[0], step[1]) >= self.min_travel or abs(step[2]) >= self.min_turn:
            self.reference, self.reference_pose = frame, pose
        return pose


def open_visual_odometry(folder: Path | None = None, room_axes: bool = True) -> VisualOdometry:
    """The shipped motion network's odometry (or the one in folder); a one-line DataError if it cannot load."""
    if folder is not None and not Path(folder).is_dir():
        raise DataError(f"{folder} is not a motion network folder (train one with `loc3r pretrain-motion`)")
    return VisualOdometry(StepReader(folder), room_axes=room_axes)
