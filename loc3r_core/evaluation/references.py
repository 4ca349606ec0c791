"""Non-learned references on the model's own metrics and samples: the floor and ceiling of every number.

- `path-centre`: the centre of the clip's camera path, facing the mean camera heading (chance
  for localization);
- `majority`: each question type answered with its most frequent training answer (chance for QA);
- `anchor`: the true centre of the first object the situation names, facing the last one it names;
- `oracle`: a perfect parser over a perfect map. The situation is placed by the generator's
  own rules from its stated relations and the TRUE objects (each random draw replaced by its
  mean), and every question is answered by rules from that placement and the true objects.

References read the ground truth of the same (scene, situation, question) items `loc3r eval`
scores, in the scene's frame (errors of positions and headings do not depend on the frame).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
from tqdm import tqdm

from loc3r_core.errors import DataError
from loc3r_core.evaluation.metrics import LOCALIZATION_KEYS, PLACEMENT_KEYS, MetricAccumulator
from loc3r_core.geometry import camera_yaw, heading_to
from loc3r_core.world.polygon import from_box_frame, to_box_frame
from loc3r_core.world.scene import Question, Scene, SceneObject, Situation
from loc3r_core.world.scene_io import SceneFolder, SceneRoots, scene_folders
from loc3r_core.world.situations import (
    DIRECTIONS,
    DOOR_STEP_M,
    IN_FRONT_GAP_M,
    NEXT_TO_GAP_M,
    SEAT_EDGE_INSET_M,
    bearing,
    direction_of,
    floor_distance,
    labels_in,
    placement_kind,
    ring_around,
    rounded_distance,
)

if TYPE_CHECKING:  # the dataset module pulls in torch, which references do not need
    from loc3r_core.data.dataset import SceneClipDataset

REFERENCES = ("path-centre", "majority", "anchor", "oracle")
Placement = tuple[np.ndarray, float]


# --- placements -----------------------------------------------------------------------------


def path_centre(camera_poses: np.ndarray) -> Placement:
    """Mean camera position on the floor, facing the circular mean of the camera headings."""
    yaws = camera_yaw(camera_poses)
    return camera_poses[:, :2, 3].mean(axis=0), math.atan2(np.sin(yaws).mean(), np.cos(yaws).mean())


def named_object_ids(situation: Situation) -> list[int]:
    """The objects a situation names, in the order its words name them."""
    ids: list[int] = []
    for relation in situation.relations:
        ids += relation["object_ids"] if "object_ids" in relation else [relation["object_id"]]
    return ids


def anchor_placement(scene: Scene, situation: Situation, fallback: Placement) -> Placement:
    """At the first named object's centre, facing the last named one (the fallback heading when they coincide)."""
    ids = named_object_ids(situation)
    first, last = scene.object(ids[0]).center[:2], scene.object(ids[-1]).center[:2]
    yaw = fallback[1] if ids[0] == ids[-1] else heading_to(first, last)
    return first.copy(), yaw


def oracle_placement(scene: Scene, situation: Situation) -> Placement:
    """Where the generator's rule for the situation's first relation puts the asker, at its mean draw."""
    first, kind = situation.relations[0], placement_kind(scene, situation)
    facing = next((r for r in situation.relations[1:] if r["relation"] == "facing"), None)
    target = scene.object(facing["object_id"]) if facing else None
    if kind == "between":
        a, b = (scene.object(i).center[:2] for i in first["object_ids"])
        position = (a + b) / 2
    else:
        anchor = scene.object(first["object_id"])
        if kind == "on":
            if anchor.label == "chair":  # one sits on a chair facing where it faces
                return anchor.center[:2].copy(), anchor.yaw
            position = on_seat_edge(anchor, target)
        elif kind == "in_front_of":
            position = from_box_frame(np.array([anchor.size[0] / 2 + np.mean(IN_FRONT_GAP_M), 0.0]),
                                      anchor.center[:2], anchor.yaw)
        elif kind == "door":
            position = from_box_frame(np.array([np.mean(DOOR_STEP_M), 0.0]), anchor.center[:2], anchor.yaw)
        else:  # next to the anchor, on its side towards what the asker faces
            position = beside(anchor, target)
    yaw = heading_to(position, target.center[:2]) if target is not None else 0.0
    return position, yaw


def on_seat_edge(seat: SceneObject, target: SceneObject | None) -> np.ndarray:
    if target is None:
        return seat.center[:2].copy()
    inner = seat.size[:2] / 2 - SEAT_EDGE_INSET_M
    local = to_box_frame(target.center[:2], seat.center[:2], seat.yaw)
    return from_box_frame(np.clip(local, -inner, inner), seat.center[:2], seat.yaw)


def beside(anchor: SceneObject, target: SceneObject | None) -> np.ndarray:
    """The point of the ring around anchor nearest to the middle of its arc facing the target."""
    spots = ring_around(anchor, float(np.mean(NEXT_TO_GAP_M)))
    if target is not None:
        reach = np.linalg.norm(anchor.center[:2] - target.center[:2])
        toward = np.linalg.norm(spots - target.center[:2], axis=1) < reach
        spots = spots[toward] if toward.any() else spots
    middle = spots.mean(axis=0)
    return spots[np.argmin(np.linalg.norm(spots - middle, axis=1))]


# --- answers --------------------------------------------------------------------------------

_SECTOR_PHRASES = {"in front of me": "front", "on my left": "left", "behind me": "behind", "on my right": "right"}


class Footprint(Protocol):
    """What the answer rules read of an object: a true `SceneObject` or a map's `MapObject`."""

    label: str
    center: np.ndarray  # (2,) or (3,), metres: the floor position is [:2]
    size: np.ndarray  # extent along the box's own axes; the footprint is [:2]
    yaw: float


def oracle_answer(question: Question, objects: Sequence[Footprint], position: np.ndarray, yaw: float) -> str:
    """The answer rules give from a placement and a list of objects, reading only the question's words.

    With the TRUE objects this is the oracle's answer; with a map's objects it is what the map
    says. Where the objects hold no candidate (a map that never found the asked class) the answer
    is "" (unanswerable), never a guess.
    """
    text, mentioned = question.question, labels_in(question.question)
    of_label = {label: [o for o in objects if o.label == label] for label in set(mentioned)}

    def nearest(candidates: Sequence[Footprint]) -> Footprint | None:
        return min(candidates, key=lambda o: floor_distance(position, o), default=None)

    if question.type in ("direction", "distance"):
        target = nearest(of_label[mentioned[0]])
        if target is None:
            return ""
        if question.type == "direction":
            return direction_of(bearing(position, yaw, target.center[:2]))
        return rounded_distance(floor_distance(position, target))
    if question.type == "nearest":
        found = nearest([o for label in mentioned for o in of_label[label]] or list(objects))
        return found.label if found is not None else ""
    if question.type == "count":
        same = of_label[mentioned[0]]
        if "in front of me" in text:
            same = [o for o in same if abs(bearing(position, yaw, o.center[:2])) < math.pi / 2]
        return str(len(same))
    if question.type == "what_direction":
        sector = next(d for phrase, d in _SECTOR_PHRASES.items() if phrase in text)
        centre = math.radians(90.0 * DIRECTIONS.index(sector))
        inside = [o for o in objects if floor_distance(position, o) > 0.0
                  and abs(math.remainder(bearing(position, yaw, o.center[:2]) - centre, 2 * math.pi)) < math.pi / 4]
        found = nearest(inside)
        return found.label if found is not None else ""
    raise ValueError(f"no rule answers questions of type {question.type!r}")


def majority_answers(train_data: SceneRoots) -> dict[str, str]:
    """Per question type, the most frequent answer in a training split (one folder or several)."""
    try:
        folders = [SceneFolder(p) for p in scene_folders(train_data)]
    except DataError as exc:
        raise DataError(f"{exc}: the majority reference needs a training split") from None
    counts: dict[str, Counter] = {}
    for folder in folders:
        for situation in folder.situations:
            for question in situation.questions:
                counts.setdefault(question.type, Counter())[question.answer] += 1
    return {qtype: counter.most_common(1)[0][0] for qtype, counter in sorted(counts.items())}


# --- scoring ---------------------------------------------------------------------------------


def evaluate_reference(name: str, dataset: SceneClipDataset, indices: list[int], train_data: SceneRoots | None = None,
                       progress: bool = True) -> dict:
    """Localization and/or QA metrics of one reference over the dataset items `indices`.

    The dataset's items and frame sampling define what is scored, as for the model; only the
    metrics a reference produces are reported.
    """
    if name not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, not {name!r}")
    majority = majority_answers(train_data) if name == "majority" else None
    accumulator = MetricAccumulator()
    located: set[tuple[int, int]] = set()
    for index in tqdm(indices, desc=name, unit="q", disable=not progress, leave=False):
        scene_index, situation_index, question_index = dataset.items[index]
        folder = dataset.scenes[scene_index]
        scene, situation = folder.scene, folder.situations[situation_index]
        question = situation.questions[question_index]
        poses = np.stack([scene.frames[int(i)].T_world_camera for i in dataset.frame_indices(index)])
        placement = PLACERS[name](scene, situation, path_centre(poses)) if name in PLACERS else None
        if placement is not None and (scene_index, situation_index) not in located:
            located.add((scene_index, situation_index))
            accumulator.add_localization(placement[0], placement[1], np.zeros(2), situation.position, situation.yaw,
                                         placement_kind(scene, situation))
        if majority is not None:
            accumulator.add_answer(question.type, majority.get(question.type, ""), question.answer)
        elif name == "oracle":
            accumulator.add_answer(question.type, oracle_answer(question, scene.objects, *placement), question.answer)
    summary = accumulator.summary()
    keys = [*(LOCALIZATION_KEYS + PLACEMENT_KEYS if name in PLACERS else ()),
            *(("qa_em", "qa_em_by_type") if name in ANSWERING else ()),
            *(("position_median_error_m",) if name in PLACERS else ()), "num_samples", "num_situations"]
    metrics = {key: summary[key] for key in keys}
    metrics["num_samples"] = len(indices)
    return metrics


PLACERS: dict[str, Callable[[Scene, Situation, Placement], Placement]] = {
    "path-centre": lambda scene, situation, centre: centre,
    "anchor": anchor_placement,
    "oracle": lambda scene, situation, centre: oracle_placement(scene, situation),
}
ANSWERING = ("majority", "oracle")
