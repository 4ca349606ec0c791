"""The ground truth of one synthetic scene, and its scene.json / situations.jsonl forms."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from loc3r_core.geometry import Intrinsics, transform_planar, wrap_angle
from loc3r_core.world.polygon import box_corners

_DIGITS = 6  # scene.json stores metres and radians to the micrometre / microradian...
_POSE_DIGITS = 9  # ...and poses finer, so their rotations stay orthonormal to 1e-9
SEEN_SHARE = 0.005  # an object counts as seen once it covered this share of one frame, summed over frames


def seen_object_ids(pixels_per_id: dict[int, int], frame_pixels: int) -> set[int]:
    """Ids of the objects (not structure, id 0) seen in a set of frames, from their summed pixel counts."""
    return {i for i, n in pixels_per_id.items() if i > 0 and n >= SEEN_SHARE * frame_pixels}


@dataclass(frozen=True)
class Room:
    polygon: np.ndarray  # (N, 2) floor outline, counter-clockwise, metres
    height: float  # ceiling height, metres


@dataclass(frozen=True)
class SceneObject:
    id: int  # from 1; 0 is room structure in instance images
    label: str
    center: np.ndarray  # (3,) box centre, metres
    size: np.ndarray  # (3,) box extent along its own x (front), y (left), z (up)
    yaw: float  # box heading about +z, radians
    color: tuple[float, float, float]  # the main colour, RGB in [0, 1]

    def footprint(self) -> np.ndarray:
        return box_corners(self.center[:2], self.size[:2], self.yaw)


@dataclass(frozen=True)
class Frame:
    index: int
    stamp: float  # seconds since the first frame
    T_world_camera: np.ndarray  # (4, 4), OpenCV camera


@dataclass(frozen=True)
class Question:
    type: str  # see QUESTION_TYPES in world.situations
    question: str
    answer: str
    object_ids: tuple[int, ...]  # the objects the answer is about
    situated: bool = True  # whether the answer depends on where the asker is


@dataclass(frozen=True)
class Situation:
    id: int
    position: np.ndarray  # (2,) agent position on the floor, metres
    yaw: float  # agent facing direction, radians
    text: str
    relations: tuple[dict, ...]  # what the text states, e.g. {"relation": "facing", "object_id": 3}
    questions: tuple[Question, ...] = field(default=())


@dataclass(frozen=True)
class Scene:
    room: Room
    objects: tuple[SceneObject, ...]
    intrinsics: Intrinsics
    frames: tuple[Frame, ...]

    def object(self, object_id: int) -> SceneObject:
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        raise KeyError(f"no object with id {object_id}")

    def poses(self) -> np.ndarray:
        return np.stack([f.T_world_camera for f in self.frames])

    def transformed(self, pose: np.ndarray) -> Scene:
        """The same scene in another gravity-aligned frame: pose maps old to new coordinates."""
        polygon, _ = transform_planar(pose, self.room.polygon, 0.0)
        objects = []
        for obj in self.objects:
            xy, yaw = transform_planar(pose, obj.center[:2], obj.yaw)
            objects.append(replace(obj, center=np.array([*xy, obj.center[2] + pose[2, 3]]), yaw=float(yaw)))
        frames = tuple(replace(f, T_world_camera=pose @ f.T_world_camera) for f in self.frames)
        return Scene(replace(self.room, polygon=polygon), tuple(objects), self.intrinsics, frames)

    def to_json(self) -> dict:
        return {
            "room": {"polygon": _rounded(self.room.polygon), "height": round(self.room.height, _DIGITS)},
            "objects": [
                {
                    "id": o.id,
                    "label": o.label,
                    "center": _rounded(o.center),
                    "size": _rounded(o.size),
                    "yaw": round(float(o.yaw), _DIGITS),
                    "color": _rounded(np.array(o.color)),
                }
                for o in self.objects
            ],
            "intrinsics": self.intrinsics.to_dict(),
            "frames": [
                {
                    "index": f.index,
                    "stamp": round(f.stamp, _DIGITS),
                    "T_world_camera": _rounded(f.T_world_camera, _POSE_DIGITS),
                }
                for f in self.frames
            ],
        }

    @classmethod
    def from_json(cls, data: dict) -> Scene:
        room = Room(np.array(data["room"]["polygon"], dtype=np.float64), float(data["room"].get("height", 3.0)))
        objects = tuple(
            SceneObject(
                id=int(o["id"]),
                label=str(o["label"]),
                center=np.array(o["center"], dtype=np.float64),
                size=np.array(o["size"], dtype=np.float64),
                yaw=float(o["yaw"]),
                color=tuple(o.get("color", (0.5, 0.5, 0.5))),
            )
            for o in data["objects"]
        )
        frames = tuple(
            Frame(int(f["index"]), float(f["stamp"]), np.array(f["T_world_camera"], dtype=np.float64))
            for f in data["frames"]
        )
        return cls(room, objects, Intrinsics(**data["intrinsics"]), frames)


def situation_to_json(situation: Situation) -> dict:
    return {
        "id": situation.id,
        "position": _rounded(situation.position),
        "yaw": round(float(situation.yaw), _DIGITS),
        "text": situation.text,
        "relations": list(situation.relations),
        "questions": [
            {"type": q.type, "question": q.question, "answer": q.answer, "object_ids": list(q.object_ids),
             "situated": q.situated}
            for q in situation.questions
        ],
    }


def situation_from_json(data: dict) -> Situation:
    return Situation(
        id=int(data["id"]),
        position=np.array(data["position"], dtype=np.float64),
        yaw=float(data["yaw"]),
        text=str(data["text"]),
        relations=tuple(data["relations"]),
        questions=tuple(
            Question(q["type"], q["question"], q["answer"], tuple(q["object_ids"]), bool(q.get("situated", True)))
            for q in data["questions"]
        ),
    )


def transform_situation(situation: Situation, pose: np.ndarray) -> Situation:
    xy, yaw = transform_planar(pose, situation.position, situation.yaw)
    return replace(situation, position=xy, yaw=float(wrap_angle(yaw)))


def _rounded(values: np.ndarray, digits: int = _DIGITS) -> list:
    """Nested lists of floats rounded for stable, diff-friendly JSON (-0.0 becomes 0.0)."""
    return (np.round(np.asarray(values, dtype=np.float64), digits) + 0.0).tolist()

