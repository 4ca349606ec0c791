"""Generation knobs and the standard splits (named presets of knobs and seeds)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from loc3r_core.errors import UsageError
from loc3r_core.world.placement import max_objects
from loc3r_core.world.trajectory import TRAJECTORY_KINDS

MIN_ROOM_SIDE = 3.0  # metres; below this a robot has no room to move
MAX_CAMERA_HEIGHT = 2.2  # rooms are at least 2.5 m high


@dataclass(frozen=True)
class WorldKnobs:
    room_size: tuple[float, float] = (3.5, 7.0)  # side lengths of the room's bounding box, m
    objects: tuple[int, int] = (4, 8)  # objects per room
    camera_height: tuple[float, float] = (0.6, 1.4)  # m above the floor
    camera_pitch: tuple[float, float] = (-20.0, 0.0)  # degrees, negative looks down
    trajectory: str = "mixed"  # walk, turn, loop, or mixed (one of the three per scene)
    frames: int = 32
    image_size: int = 128  # square images, pixels
    fov: float = 70.0  # degrees, vertical (= horizontal for square images)

    def validate(self) -> WorldKnobs:
        """Return self, or raise UsageError naming the first invalid knob."""
        _range("--room-size", self.room_size, MIN_ROOM_SIDE, 30.0)
        _range("--objects", self.objects, 2, max_objects())
        _range("--camera-height", self.camera_height, 0.1, MAX_CAMERA_HEIGHT)
        _range("--camera-pitch", self.camera_pitch, -80.0, 60.0)
        if self.trajectory not in (*TRAJECTORY_KINDS, "mixed"):
            raise UsageError(f"--trajectory must be one of {', '.join((*TRAJECTORY_KINDS, 'mixed'))}, "
                             f"not {self.trajectory!r}")
        if not 2 <= self.frames <= 10_000:
            raise UsageError(f"--frames must be between 2 and 10000, not {self.frames}")
        if not 16 <= self.image_size <= 2048:
            raise UsageError(f"--image-size must be between 16 and 2048 pixels, not {self.image_size}")
        if not 20.0 <= self.fov <= 140.0:
            raise UsageError(f"--fov must be between 20 and 140 degrees, not {self.fov}")
        return self

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> WorldKnobs:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _range(flag: str, bounds: tuple[float, float], low: float, high: float) -> None:
    lo, hi = bounds
    if not lo <= hi:
        raise UsageError(f"{flag} MIN MAX needs MIN <= MAX, got {lo} > {hi}")
    if lo < low or hi > high:
        raise UsageError(f"{flag} must lie within [{low}, {high}], got {lo} {hi}")


@dataclass(frozen=True)
class Split:
    seed: int
    knobs: WorldKnobs
    scenes: int  # the standard size of the split
    purpose: str


_TRAIN = WorldKnobs()
SPLITS: dict[str, Split] = {
    "train": Split(0, _TRAIN, 1000, "training"),
    "train-bigrooms": Split(
        30, replace(_TRAIN, room_size=(6.0, 9.0)), 300,
        "extra training scenes in rooms 6-9 m across (train's object counts), read with train",
    ),
    "train-clutter": Split(
        31, replace(_TRAIN, room_size=(5.0, 9.0), objects=(8, 12)), 300,
        "extra training scenes with 8-12 objects in rooms 5-9 m across (the clutter experiment, P16)",
    ),
    "val": Split(1, _TRAIN, 100, "validation, same distribution as train"),
    "test": Split(2, _TRAIN, 200, "test, same distribution as train"),
    "test-novel-view": Split(
        3, replace(_TRAIN, camera_height=(1.55, 1.9), camera_pitch=(-35.0, -23.0)), 200,
        "camera heights and pitches outside the training ranges",
    ),
    "test-complex": Split(
        4, replace(_TRAIN, room_size=(6.0, 9.0), objects=(10, 14)), 200,
        "more objects than training, in bigger rooms",
    ),
}


def split_named(name: str) -> Split:
    if name not in SPLITS:
        raise UsageError(f"unknown split {name!r}; the standard splits are {', '.join(SPLITS)}")
    return SPLITS[name]
