"""A torch Dataset over a folder of scene folders.

One item is a clip of a scene: frames sampled in time order, re-expressed in the frame
anchored to the clip's first sampled camera (as METHOD.md's BEV frame is), with
- the pose prior: each frame's pose relative to the first sampled frame (what odometry gives),
- the ego pose of every frame (x, y, yaw in the clip's BEV frame),
- per-patch BEV targets (mean back-projected point of the patch), per-patch labels and the
  centre of the object each patch shows,
- one situation with one of its questions, placed in the same frame (or, for a share of the
  questions whose answer does not depend on the asker, the pseudo-situation of METHOD.md),
- for evaluation: the scene's objects in the same frame, which of them the clip's frames show,
  and the classes of the objects the situation names.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
from torch.utils.data import Dataset

from loc3r_core.data.targets import PATCH_TARGETS, PRESENT_SHARE, patch_targets, subdivide
from loc3r_core.geometry import anchor_frame, invert_pose, planar_camera_pose, transform_planar, transform_points
from loc3r_core.runtime.preprocess import model_image
from loc3r_core.world.scene import Question, Scene, Situation, seen_object_ids, transform_situation
from loc3r_core.world.scene_io import SceneFolder, SceneRoots, scene_folders
from loc3r_core.world.situations import facing_rule, labels_in, placement_kind
from loc3r_core.world.vocabulary import PATCH_CLASSES

SAMPLING = ("uniform", "random")
PSEUDO_SITUATION = "I am standing in the room."  # METHOD.md: questions without a situation


class SceneClipDataset(Dataset):
    """Items are (scene, situation, question) triples; each loads its own clip of the scene.

    Per-frame targets are computed once per frame in the scene's stored frame and cached
    (re-anchoring a clip is a rigid motion, which commutes with the patch means), so the many
    questions of a scene share that work.
    """

    def __init__(
        self,
        roots: SceneRoots,
        num_frames: int = 8,
        patch_grid: tuple[int, int] = (8, 8),
        image_size: int | None = None,
        sampling: str = "uniform",
        pseudo_situation_share: float = 0.0,
        seed: int = 0,
        cached_frames: int = 50_000,
        patch_target: str = "majority",
        token_present_share: float = PRESENT_SHARE,
        map_subdivision: int = 1,
        load_images: bool = True,
    ) -> None:
        if sampling not in SAMPLING:
            raise ValueError(f"sampling must be one of {SAMPLING}, not {sampling!r}")
        if patch_target not in PATCH_TARGETS:
            raise ValueError(f"patch_target must be one of {PATCH_TARGETS}, not {patch_target!r}")
        if not 0.0 < token_present_share <= 1.0:
            raise ValueError(f"token_present_share must lie in (0, 1], not {token_present_share}")
        if not 0.0 <= pseudo_situation_share <= 1.0:
            raise ValueError(f"pseudo_situation_share must lie in [0, 1], not {pseudo_situation_share}")
        self.scenes = [SceneFolder(p) for p in scene_folders(roots)]
        self.num_frames = num_frames
        self.patch_grid = patch_grid
        self.image_size = image_size
        self.sampling = sampling
        self.patch_target = patch_target
        self.token_present_share = token_present_share  # objects_first, the token grid only (not the map's sub-patches)
        self.map_subdivision = map_subdivision  # > 1: also s x s sub-patch targets per token (the map head)
        self.load_images = load_images  # False: clips carry no images (training from a tower feature cache)
        self.pseudo_situation_share = pseudo_situation_share
        self.seed = seed
        self.epoch = 0
        self.items = [
            (scene_index, situation_index, question_index)
            for scene_index, folder in enumerate(self.scenes)
            for situation_index, situation in enumerate(folder.situations)
            for question_index in range(len(situation.questions))
        ]
        self._frame_cache: OrderedDict[tuple[int, int], dict[str, np.ndarray]] = OrderedDict()
        self._cached_frames = cached_frames

    def set_epoch(self, epoch: int) -> None:
        """Random sampling draws other frames each epoch, reproducibly."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def frame_indices(self, index: int) -> np.ndarray:
        scene_index = self.items[index][0]
        total = len(self.scenes[scene_index].scene.frames)
        count = min(self.num_frames, total)
        if self.sampling == "uniform":
            return np.linspace(0, total - 1, count).round().astype(np.int64)
        return np.sort(self._rng(index).choice(total, size=count, replace=False))

    def frame_targets(self, scene_index: int, frame: int) -> dict[str, np.ndarray]:
        """Patch targets of one frame in the scene's stored frame (cached, least recently used out)."""
        key = (scene_index, frame)
        if key in self._frame_cache:
            self._frame_cache.move_to_end(key)
            return self._frame_cache[key]
        folder = self.scenes[scene_index]
        scene = folder.scene
        args = (folder.depth(frame), folder.instance(frame), scene.intrinsics, scene.frames[frame].T_world_camera,
                scene)
        targets = patch_targets(*args, self.patch_grid, self.patch_target, centres=True,
                                present_share=self.token_present_share)
        if self.map_subdivision > 1:
            s, (rows, cols) = self.map_subdivision, self.patch_grid
            fine = patch_targets(*args, (rows * s, cols * s), self.patch_target)
            targets |= {f"map_{key}": subdivide(fine[key], self.patch_grid, s) for key in ("points", "valid", "label")}
        self._frame_cache[key] = targets
        if len(self._frame_cache) > self._cached_frames:
            self._frame_cache.popitem(last=False)
        return targets

    def class_counts(self, frames: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Patch-class counts of the token labels ("semantic") and, with map_subdivision > 1, of the
        sub-patch labels ("map_semantic"), over `frames` frames drawn evenly at random from the split."""
        rng = np.random.default_rng([seed, 17])
        scene_indices = sorted({item[0] for item in self.items})
        counts = {"semantic": np.zeros(len(PATCH_CLASSES), np.int64)}
        if self.map_subdivision > 1:
            counts["map_semantic"] = np.zeros(len(PATCH_CLASSES), np.int64)
        for _ in range(frames):
            scene_index = scene_indices[rng.integers(len(scene_indices))]
            targets = self.frame_targets(scene_index, int(rng.integers(len(self.scenes[scene_index].scene.frames))))
            for name, key in (("semantic", "label"), ("map_semantic", "map_label")):
                if name in counts:
                    labels = targets[key][targets[key] >= 0]
                    counts[name] += np.bincount(labels, minlength=len(PATCH_CLASSES))
        return counts

    def __getitem__(self, index: int) -> dict:
        scene_index, situation_index, question_index = self.items[index]
        clip, T_clip_world = self.clip(index)
        draw = float(self._rng(index).random())
        return clip | self.situation_fields(scene_index, situation_index, question_index, T_clip_world, draw)

    def clip(self, index: int) -> tuple[dict, np.ndarray]:
        """Item `index`'s clip: its frames and per-frame targets in the clip's frame, the scene's
        objects, which of them the frames show; and the clip's anchor transform T_clip_world."""
        scene_index = self.items[index][0]
        folder = self.scenes[scene_index]
        scene = folder.scene
        picks = self.frame_indices(index)
        poses_world = np.stack([scene.frames[i].T_world_camera for i in picks])
        T_clip_world = anchor_frame(poses_world[0])
        poses = T_clip_world @ poses_world
        targets = [self.frame_targets(scene_index, int(i)) for i in picks]
        points = transform_points(T_clip_world, np.stack([t["points"] for t in targets]))
        pixels: dict[int, int] = {}
        for t in targets:
            for object_id in np.flatnonzero(t["object_pixels"]):
                pixels[int(object_id)] = pixels.get(int(object_id), 0) + int(t["object_pixels"][object_id])
        return {
            "scene": folder.path.name,
            "scene_index": torch.tensor(scene_index),
            "frame_indices": torch.from_numpy(picks),
            "stamps": torch.tensor([scene.frames[i].stamp for i in picks], dtype=torch.float64),
            **({"images": torch.from_numpy(np.stack([self.frame_image(scene_index, int(i)) for i in picks]))}
               if self.load_images else {}),
            "T_world_camera": torch.from_numpy(poses),
            "prior_pose": torch.from_numpy(invert_pose(poses[0]) @ poses),
            "ego_pose": torch.from_numpy(planar_camera_pose(poses)),
            "patch_points": torch.from_numpy(points),
            "bev_target": torch.from_numpy(np.nan_to_num(points[..., :2])),
            "bev_valid": torch.from_numpy(np.stack([t["valid"] for t in targets])),
            "centre_target": torch.from_numpy(np.nan_to_num(
                transform_points(T_clip_world, np.stack([t["centres"] for t in targets]))[..., :2])),
            **clip_fronts(np.stack([t["fronts"] for t in targets]), T_clip_world),
            "patch_label": torch.from_numpy(np.stack([t["label"] for t in targets])),
            "objects": clip_objects(scene, T_clip_world),
            "seen_object_ids": sorted(seen_object_ids(pixels, scene.intrinsics.width * scene.intrinsics.height)),
            **({} if self.map_subdivision == 1 else map_targets(targets, T_clip_world)),
        }, T_clip_world

    def situation_fields(self, scene_index: int, situation_index: int, question_index: int,
                         T_clip_world: np.ndarray, draw: float) -> dict:
        """One situation and one of its questions in a clip's frame, with their targets. draw in
        [0, 1) decides whether a question that allows it loses its situation (pseudo_situation_share)."""
        scene = self.scenes[scene_index].scene
        stored = self.scenes[scene_index].situations[situation_index]
        situation = transform_situation(stored, T_clip_world)
        question = situation.questions[question_index]
        # METHOD.md: questions asked without a situation get a pseudo-situation; only answers
        # that do not depend on where the asker is may lose theirs.
        has_situation = question.situated or draw >= self.pseudo_situation_share
        return {
            "has_situation": has_situation,
            "situation_text": situation.text if has_situation else PSEUDO_SITUATION,
            "situation_position": torch.from_numpy(np.asarray(situation.position, dtype=np.float64)),
            "situation_yaw": torch.tensor(situation.yaw, dtype=torch.float64),
            "question": question.question,
            "question_type": question.type,
            "answer": question.answer,
            "named_classes": named_classes(scene, situation) if has_situation else None,
            "placement": placement_kind(scene, situation) if has_situation else None,
            "grounding_classes": torch.tensor(grounding_classes(scene, situation) if has_situation else (-1, -1, -1)),
            "facing_rule": torch.tensor(facing_rule(scene, situation) if has_situation else -1),
            "faced_xy": faced_place(scene, situation, T_clip_world) if has_situation
            else torch.zeros(2, dtype=torch.float64),
            **asked_object_target(scene, stored, question, has_situation),
        }

    def frame_image(self, scene_index: int, frame: int) -> np.ndarray:
        """(3, S, S) float32 in [0, 1], resized if asked: what the runtime feeds the model too."""
        rgb = self.scenes[scene_index].rgb(frame)
        return model_image(rgb, self.image_size or rgb.shape[0])


class PackedClipDataset(SceneClipDataset):
    """Items are (scene, chunk): one clip of a scene with up to `questions_per_clip` of its
    (situation, question) pairs, which share the clip's frames (the model encodes them once).

    Every epoch each scene's pairs are shuffled and cut into chunks again, so every pair is asked
    once an epoch, with other companions and other frames each time. Item keys: the clip's
    (SceneClipDataset.clip) plus "rows", a list of SceneClipDataset.situation_fields dicts.
    """

    def __init__(self, roots: SceneRoots, questions_per_clip: int, **kwargs: object) -> None:
        super().__init__(roots, **kwargs)
        if questions_per_clip < 1:
            raise ValueError(f"questions_per_clip must be at least 1, not {questions_per_clip}")
        self.questions_per_clip = questions_per_clip
        self.pairs: list[list[tuple[int, int]]] = [[] for _ in self.scenes]
        for scene_index, situation_index, question_index in self.items:
            self.pairs[scene_index].append((situation_index, question_index))
        self.items = [(scene_index, chunk) for scene_index, pairs in enumerate(self.pairs)
                      for chunk in range(math.ceil(len(pairs) / questions_per_clip))]

    def rows(self, index: int) -> list[tuple[int, int]]:
        """The (situation, question) pairs item `index` asks in this epoch."""
        scene_index, chunk = self.items[index]
        pairs = self.pairs[scene_index]
        order = np.random.default_rng([self.seed, self.epoch, scene_index, 1]).permutation(len(pairs))
        return [pairs[i] for i in order[chunk * self.questions_per_clip:(chunk + 1) * self.questions_per_clip]]

    def __getitem__(self, index: int) -> dict:
        clip, T_clip_world = self.clip(index)
        draws = np.random.default_rng([self.seed, self.epoch, index, 2]).random(self.questions_per_clip)
        scene_index = self.items[index][0]
        rows = [self.situation_fields(scene_index, situation_index, question_index, T_clip_world, float(draw))
                for (situation_index, question_index), draw in zip(self.rows(index), draws, strict=False)]
        return clip | {"rows": rows}


def map_targets(targets: list[dict[str, np.ndarray]], T_clip_world: np.ndarray) -> dict[str, torch.Tensor]:
    """The map head's sub-patch targets of a clip's frames: (F, P, s^2, 2) points in the clip's
    frame, whether each has one, and its class."""
    points = transform_points(T_clip_world, np.stack([t["map_points"] for t in targets]))[..., :2]
    return {"map_target": torch.from_numpy(np.nan_to_num(points)),
            "map_valid": torch.from_numpy(np.stack([t["map_valid"] for t in targets])),
            "map_label": torch.from_numpy(np.stack([t["map_label"] for t in targets]))}


def clip_fronts(fronts: np.ndarray, T_clip_world: np.ndarray) -> dict[str, torch.Tensor]:
    """(F, rows, cols, 2) world-frame front vectors (NaN: no fronted object) -> front_target
    (F, rows, cols, 2) in the clip's axes and front_valid (F, rows, cols)."""
    valid = ~np.isnan(fronts[..., 0])
    rotated = np.nan_to_num(fronts) @ T_clip_world[:2, :2].T
    return {"front_target": torch.from_numpy(rotated), "front_valid": torch.from_numpy(valid)}


def clip_objects(scene: Scene, T_clip_world: np.ndarray) -> list[dict]:
    """The scene's objects in the clip's frame: id, class (index into PATCH_CLASSES), footprint."""
    objects = []
    for obj in scene.objects:
        xy, yaw = transform_planar(T_clip_world, obj.center[:2], obj.yaw)
        objects.append({"id": obj.id, "class": PATCH_CLASSES.index(obj.label), "center": np.asarray(xy),
                        "size": obj.size[:2].copy(), "yaw": float(yaw)})
    return objects


def faced_object_id(situation: Situation) -> int:
    """The object a situation faces: the last one it names."""
    last = situation.relations[-1]
    return last["object_ids"][-1] if "object_ids" in last else last["object_id"]


def grounding_classes(scene: Scene, situation: Situation) -> tuple[int, int, int]:
    """Classes of what places a situation (its first relation's one or two objects; -1 for none)
    and of what it faces (named last): the tokens <Pos> and <Ori> should point at in training."""
    first = situation.relations[0]
    placing = [*(first["object_ids"] if "object_ids" in first else [first["object_id"]]), None][:2]
    classes = [-1 if i is None else PATCH_CLASSES.index(scene.object(i).label) for i in placing]
    return classes[0], classes[1], PATCH_CLASSES.index(scene.object(faced_object_id(situation)).label)


def faced_place(scene: Scene, situation: Situation, T_clip_world: np.ndarray) -> torch.Tensor:
    """(2,) the centre of the object a situation faces, in the clip's frame (the faced_place_weight target)."""
    xy, _ = transform_planar(T_clip_world, scene.object(faced_object_id(situation)).center[:2], 0.0)
    return torch.from_numpy(np.asarray(xy, dtype=np.float64))


EGOCENTRIC_TYPES = ("direction", "distance", "nearest", "what_direction")  # about one object, from the asker


def asked_object_target(scene: Scene, situation: Situation, question: Question, has_situation: bool
                        ) -> dict[str, torch.Tensor]:
    """answer_xy: the centre of the one object a situated question is about, in the asker's frame
    (metres ahead, to the left; any frame the situation is given in gives the same), and whether
    there is one (answer_xy_valid); asked_class: its patch class (-1: none); counted_class: the
    patch class a count question counts (-1 for other questions; its objects may be none)."""
    valid = has_situation and question.type in EGOCENTRIC_TYPES and len(question.object_ids) == 1
    xy, asked_class = np.zeros(2), -1
    if valid:
        asked = scene.object(question.object_ids[0])
        offset = asked.center[:2] - np.asarray(situation.position)
        cos, sin = math.cos(situation.yaw), math.sin(situation.yaw)
        xy = np.array([cos * offset[0] + sin * offset[1], -sin * offset[0] + cos * offset[1]])
        asked_class = PATCH_CLASSES.index(asked.label)
    counted_class = PATCH_CLASSES.index(labels_in(question.question)[0]) if question.type == "count" else -1
    return {"answer_xy": torch.from_numpy(xy), "answer_xy_valid": torch.tensor(valid),
            "asked_class": torch.tensor(asked_class), "counted_class": torch.tensor(counted_class)}


def named_classes(scene: Scene, situation: Situation) -> tuple[int, int]:
    """Classes of the object a situation names first (what places it) and of the one it faces (named last)."""
    placing, _, faced = grounding_classes(scene, situation)
    return placing, faced
