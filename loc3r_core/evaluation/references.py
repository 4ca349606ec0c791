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
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from loc3r_core.errors import DataError
from loc3r_core.evaluation.metrics import LOCALIZATION_KEYS, PLACEMENT_KEYS, MetricAccumulator
from loc3r_core.geometry import camera_yaw, heading_to
from loc3r_core.world.answer_rules import answer_by_rules
from loc3r_core.world.polygon import from_box_frame, to_box_frame
from loc3r_core.world.scene import Scene, SceneObject, Situation
from loc3r_core.world.scene_io import SceneFolder, SceneRoots, scene_folders
from loc3r_core.world.situations import (
    DOOR_STEP_M,
    IN_FRONT_GAP_M,
    NEXT_TO_GAP_M,
    SEAT_EDGE_INSET_M,
    placement_kind,
    ring_around,
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
            answer = answer_by_rules(question.type, question.question, scene.objects, *placement)
            accumulator.add_answer(question.type, answer, question.answer)
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
