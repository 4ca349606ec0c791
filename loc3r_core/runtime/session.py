"""The streaming session: frames in, the ego pose per frame, a layout, answers from memory.

How it stays fast and flat:
- every pushed frame is encoded once (vision tokens) and run through the LM after the
  memory's key/value cache: one camera token + P vision tokens, whatever the memory size;
- a keyframe keeps its vision tokens and simply adopts the keys/values just computed, so
  adding it costs nothing more than the frame's own ego-pose pass;
- the memory holds at most `max_keyframes`; when full, a quarter is dropped at once (by
  default thinning it where keyframes are densest in time, keyframes.evicted) and the cache is
  rebuilt from the cached tokens (no image is encoded again);
- the long-term map is a fixed-size grid (mapping.LayoutGrid), the trajectory a bounded deque.

Frames: the model works in the BEV frame of the first keyframe in memory (its "anchor").
The session's map frame is the first keyframe's; each keyframe keeps its map pose, so a new
anchor's outputs are mapped into the same map frame.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from loc3r_core.errors import Loc3rError
from loc3r_core.geometry import Intrinsics, compose_planar, planar_from_transform, relative_planar, rot_z
from loc3r_core.model.prompt import ORI, POS, SITUATION, answer_text, prompt_text
from loc3r_core.readout import (
    answer_reads,
    circular_soft_argmax,
    circular_std,
    facing_bump,
    front_bump,
    pointed_fronts,
    pointer_attention,
    relative_offsets,
    softmax,
    split_gaussian,
    split_map_head,
    widened_log_sigma,
    without_eos,
)
from loc3r_core.runtime.backend import Backend, KVCache, empty_cache
from loc3r_core.runtime.floor_scale import CameraMount, FloorScaleConfig, floor_distances, keyframe_scale
from loc3r_core.runtime.keyframes import EVICTIONS, MEMORY_KEYFRAMES, KeyframePolicy, evicted
from loc3r_core.runtime.mapping import GridConfig, LayoutGrid
from loc3r_core.runtime.preprocess import model_image
from loc3r_core.runtime.spec import patch_grid
from loc3r_core.runtime.visual_odometry import VisualOdometry
from loc3r_core.types import Layout, PlanarPose
from loc3r_core.world.answer_rules import answer_by_rules
from loc3r_core.world.situations import QUESTION_TYPES, question_type

PSEUDO_SITUATION = "I am standing in the room."  # what training used for questions without a situation
# Question types answered by rules from the map's objects and the model's placement of the asker
# (in the phrasings the model was trained on; the model answers where the map has no candidate).
# Chosen on both validation splits, where these rules beat the model's own answers (count 87.3 /
# 74.4 against 82.9 / 69.9 on val / val-big, "what is on my left?" 72.6 / 64.8 against 57.0 /
# 36.6; results/experiments.md, session 36); every other type is the model's on both.
MAP_ANSWER_TYPES = ("count", "what_direction")
# Question types where the map breaks the model's near-ties: the map's answer replaces the model's
# where the model finds it at least MAP_TIEBREAK_SHARE as likely as its own (per token, geometric
# mean). Distance answers are 0.5 m steps the model often hesitates between; chosen on val, the
# streamed runtime's distance answers 47.9 -> 53.0 (val-big 36.2 -> 39.4), where the map's
# answers alone score 38.9 (results/experiments.md, session 37).
MAP_TIEBREAK_TYPES = ("distance",)
MAP_TIEBREAK_SHARE = 0.5
ANSWER_SOURCES = ("model", "map")


def check_map_answer_types(types: tuple[str, ...]) -> None:
    unknown = sorted(set(types) - set(QUESTION_TYPES))
    if unknown:
        raise ValueError(f"map_answer_types must be among {QUESTION_TYPES}, not {unknown}")


# What a map built on visual odometry may answer (or, for MAP_TIEBREAK_TYPES, break ties on). Its
# objects drift with the chained steps: counts over the whole map lose to the model's (streamed,
# val / val-big: 75.3 / 66.7 against 80.6 / 71.2 in session 44; 76.2 / 68.1 against 79.5 / 70.8
# with session 45's heading snap), but what stands around the asker still wins ("what is on my
# left?" 67.2 / 61.6 against 50.0 / 33.0), and since the snap the distance tie-breaks do too
# (45.5 / 35.6 against 43.9 / 33.4; results/experiments.md, sessions 44 and 45).
VISUAL_MAP_ANSWER_TYPES = ("what_direction", "distance")


def map_answered_types(types: tuple[str, ...], keyframes_with_odometry: int, keyframes_with_visual_odometry: int,
                       keyframes_fused: int) -> tuple[str, ...]:
    """Which of `types` the map may answer: all where most keyframes fused into it came with the
    robot's odometry, VISUAL_MAP_ANSWER_TYPES where most came with visual odometry, none where
    most had no prior: then the ego poses, and so the map, fall apart, and answers from it lose
    to the model's (val without odometry, 12 frames: count 35.5 against 82.9, what_direction 16.3
    against 53.3; results/experiments.md, session 36)."""
    if 2 * keyframes_with_odometry > keyframes_fused:
        return types
    if 2 * keyframes_with_visual_odometry > keyframes_fused:
        return tuple(kind for kind in types if kind in VISUAL_MAP_ANSWER_TYPES)
    return ()


def map_breaks_tie(model_probability: float, map_probability: float) -> bool:
    """Whether the map's answer replaces the model's own for a MAP_TIEBREAK_TYPES question."""
    return map_probability >= MAP_TIEBREAK_SHARE * model_probability


class QuestionError(Loc3rError):
    """A question or situation the session cannot take (empty, too long, no memory yet)."""


@dataclass(frozen=True)
class SessionConfig:
    max_keyframes: int = MEMORY_KEYFRAMES
    keyframes: KeyframePolicy = field(default_factory=KeyframePolicy)
    grid: GridConfig = field(default_factory=GridConfig)
    max_trajectory: int = 10_000  # poses kept for drawing (bounded: memory stays flat)
    max_text_chars: int = 1000  # per question or situation
    max_answer_tokens: int = 8
    placeable_sigma: float = 2.5  # metres: a situation placed less surely than this "cannot be placed"
    map_answer_types: tuple[str, ...] = MAP_ANSWER_TYPES  # () : every answer is the model's
    map_tiebreak_types: tuple[str, ...] = MAP_TIEBREAK_TYPES  # () : no tie is broken by the map
    eviction: str = "time"  # keyframes.EVICTIONS: which quarter a full memory drops
    # the camera's height and pitch on the robot: each keyframe's floor then sets its map points'
    # scale (runtime/floor_scale.py); None: the model's own scale
    camera_mount: CameraMount | None = None
    floor_scale: FloorScaleConfig = field(default_factory=FloorScaleConfig)

    def validate(self) -> None:
        if not 2 <= self.max_keyframes <= 256:
            raise ValueError(f"max_keyframes must lie in [2, 256], not {self.max_keyframes}")
        if self.eviction not in EVICTIONS:
            raise ValueError(f"eviction must be one of {EVICTIONS}, not {self.eviction!r}")
        check_map_answer_types(self.map_answer_types)
        check_map_answer_types(self.map_tiebreak_types)
        self.grid.validate()
        self.floor_scale.validate()
        if self.camera_mount is not None:
            self.camera_mount.validate()


PRIORS = ("wheel", "visual", "none")  # where a frame's pose prior came from


@dataclass(frozen=True)
class FrameEstimate:
    stamp_ns: int
    pose: PlanarPose  # the camera on the floor of the map frame
    keyframe: bool
    prior: str = "none"  # PRIORS: the robot's odometry, the camera's (visual odometry), or none


@dataclass(frozen=True)
class Answer:
    text: str
    confidence: float  # the model's probability of this answer: the geometric mean of its tokens'
    asker: PlanarPose  # where the model placed the asker (map frame)
    source: str = "model"  # ANSWER_SOURCES: the model's decoder, or rules over the map's objects


@dataclass(frozen=True)
class Localization:
    pose: PlanarPose
    placed: bool  # False: the model could not place the situation with confidence


@dataclass
class Keyframe:
    stamp_ns: int
    tokens: np.ndarray  # (P, H) vision tokens, computed once
    map_pose: np.ndarray  # (3,) x, y, yaw in the map frame, as estimated when it was added
    odometry: np.ndarray | None  # (3,) planar odometry, the robot's or the camera's, if any
    # the frame `odometry` is in: "wheel" (the robot's), "visual N" (the N-th chain of visual
    # odometry; a new one starts after frames with the robot's); priors relate only within one
    odometry_frame: str = ""
    pointer_keys: np.ndarray | None = None  # (P, d) its tokens' pointer keys (pointer-readout models)
    # (P, 2) map-frame places the pointer averages, once fused: its BEV points, or its objects' centres
    pointer_points: np.ndarray | None = None
    class_probs: np.ndarray | None = None  # (P, classes) its tokens' label probabilities (answer readout)
    pointer_fronts: np.ndarray | None = None  # (P, 2) map-frame ways its tokens' objects face (object fronts)
    intrinsics: Intrinsics | None = None  # its camera's, if known (the floor scale needs them)
    map_scale: float = 1.0  # its map points were moved along their rays by this (the floor scale)


class Session:
    def __init__(self, backend: Backend, config: SessionConfig | None = None,
                 visual_odometry: VisualOdometry | None = None) -> None:
        """visual_odometry: what gives frames pushed without odometry their prior (none if None)."""
        self.backend = backend
        self.visual_odometry = visual_odometry
        self.spec = backend.spec
        self.config = config or SessionConfig()
        self.config.validate()
        self.camera_mount = self.config.camera_mount  # a robot's is fixed; evaluation sets each scene's
        self.reset()

    # --- state ------------------------------------------------------------------------------

    def reset(self) -> None:
        self.memory: deque[Keyframe] = deque()
        self.cache: KVCache = empty_cache(self.spec)
        self.grid = LayoutGrid(self.config.grid, self.spec.label_names)
        self.trajectory: deque[tuple[int, np.ndarray]] = deque(maxlen=self.config.max_trajectory)
        self.frames_seen = 0
        self.images_encoded = 0
        self.memory_rebuilds = 0
        self.keyframes_fused = 0  # into the map, since the last reset
        self.keyframes_with_odometry = 0  # ... of which came with the robot's odometry
        self.keyframes_with_visual_odometry = 0  # ... of which had the visual odometry's prior
        self.visual_chains = 0  # visual odometry restarts after every run of frames with the robot's
        if self.visual_odometry is not None:
            self.visual_odometry.reset()
        self._layout: Layout | None = None

    @property
    def tokens_per_frame(self) -> int:
        return 1 + self.spec.patches_per_frame

    def memory_tokens(self) -> int:
        return int(self.cache[0].shape[3])

    # --- frames -----------------------------------------------------------------------------

    def push(self, rgb: np.ndarray, stamp_ns: int, intrinsics: Intrinsics | None = None,
             odometry: np.ndarray | None = None, force_keyframe: bool = False) -> FrameEstimate:
        """Take one camera frame; odometry is T_odom_base (4x4) at the same stamp, if known (without
        it, the visual odometry's pose, if the session has one)."""
        odom, odom_frame = self._odometry(rgb, intrinsics, odometry)
        tokens = self.backend.encode_images(model_image(rgb, self.spec.image_size, intrinsics)[None])[0]
        self.images_encoded += 1
        self.frames_seen += 1
        anchor = self.memory[0] if self.memory else None
        prior, valid = self._prior(odom, odom_frame, anchor)
        camera = self.backend.camera_tokens(prior[None], np.array([valid]))[0]
        hidden, extended = self.backend.decode(np.concatenate([camera[None], tokens]), self.cache)
        heads = self.backend.heads(hidden[:1])  # the camera row: all a non-keyframe needs
        anchor_pose = anchor.map_pose if anchor is not None else np.zeros(3)
        pose = self._ego_pose(heads["ego"][0], anchor_pose)
        if anchor is None:  # the first frame defines the map frame: its pose is the origin by definition
            pose = PlanarPose(0.0, 0.0, 0.0, pose.sigma_x, pose.sigma_y, pose.sigma_yaw)
        last = self.memory[-1] if self.memory else None
        keyframe = force_keyframe or self.config.keyframes.is_keyframe(
            np.array([pose.x, pose.y, pose.yaw]), stamp_ns, None if last is None else last.map_pose,
            0 if last is None else last.stamp_ns)
        if keyframe:
            self._add_keyframe(Keyframe(stamp_ns, tokens, np.array([pose.x, pose.y, pose.yaw]), odom, odom_frame,
                                        intrinsics=intrinsics), extended, hidden)
        self.trajectory.append((stamp_ns, np.array([pose.x, pose.y, pose.yaw])))
        return FrameEstimate(stamp_ns, pose, keyframe, odom_frame.split(" ")[0] if valid else "none")

    def _odometry(self, rgb: np.ndarray, intrinsics: Intrinsics | None,
                  odometry: np.ndarray | None) -> tuple[np.ndarray | None, str]:
        """The frame's planar odometry and the frame it is in (Keyframe.odometry_frame)."""
        if odometry is not None:
            odometry = np.asarray(odometry, dtype=np.float64)
            if odometry.shape != (4, 4) or not np.all(np.isfinite(odometry)):
                raise Loc3rError("odometry must be a finite 4x4 transform (got NaN/inf or a wrong shape)")
            if self.visual_odometry is not None and self.visual_odometry.started:
                self.visual_odometry.reset()  # its next frame starts a new chain, unrelated to this one
                self.visual_chains += 1
            return planar_from_transform(odometry), "wheel"
        if self.visual_odometry is None:
            return None, ""
        return self.visual_odometry.update(rgb, intrinsics), f"visual {self.visual_chains}"

    def _prior(self, odom: np.ndarray | None, odom_frame: str, anchor: Keyframe | None) -> tuple[np.ndarray, bool]:
        """Prior features of a frame relative to the anchor (itself when there is none): none
        unless both have odometry in the same frame."""
        if odom is None or (anchor is not None and (anchor.odometry is None or anchor.odometry_frame != odom_frame)):
            return np.zeros(4, dtype=np.float32), False
        relative = np.zeros(3) if anchor is None else relative_planar(anchor.odometry, odom)
        return np.array([relative[0], relative[1], math.cos(relative[2]), math.sin(relative[2])], np.float32), True

    def _ego_pose(self, ego: np.ndarray, anchor_pose: np.ndarray) -> PlanarPose:
        mean, sigma = split_gaussian(ego[:4])
        yaw, concentration = circular_soft_argmax(ego[4:])
        x, y, heading = compose_planar(anchor_pose, np.array([mean[0], mean[1], float(yaw)]))
        return PlanarPose(float(x), float(y), float(heading), float(sigma[0]), float(sigma[1]),
                          float(circular_std(concentration)))

    def _add_keyframe(self, keyframe: Keyframe, extended: KVCache, hidden: np.ndarray) -> None:
        """Store it; its BEV rows come from `hidden` (its own pass) unless the memory is rebuilt first."""
        if len(self.memory) >= self.config.max_keyframes:
            drop = max(1, self.config.max_keyframes // 4)
            gone = set(evicted(np.array([k.map_pose for k in self.memory]), np.array([k.stamp_ns for k in self.memory]),
                               drop, self.config.keyframes, self.config.eviction))
            self.memory = deque(k for i, k in enumerate(self.memory) if i not in gone)
            self.memory.append(keyframe)
            heads = self._rebuild_cache()
        else:
            self.memory.append(keyframe)
            self.cache = extended
            heads = self.backend.heads(hidden)
        self._fuse(keyframe, heads)
        self.keyframes_fused += 1
        self.keyframes_with_odometry += keyframe.odometry_frame == "wheel"
        self.keyframes_with_visual_odometry += keyframe.odometry_frame.startswith("visual")
        self._layout = None

    def _rebuild_cache(self) -> dict[str, np.ndarray]:
        """Re-run the LM over the memory with priors relative to the new anchor; the newest keyframe's heads."""
        anchor = self.memory[0]
        priors = [self._prior(k.odometry, k.odometry_frame, anchor if i else None) for i, k in enumerate(self.memory)]
        cameras = self.backend.camera_tokens(np.stack([p for p, _ in priors]), np.array([v for _, v in priors]))
        embeds = np.concatenate([np.concatenate([c[None], k.tokens]) for c, k in zip(cameras, self.memory,
                                                                                      strict=True)])
        hidden, self.cache = self.backend.decode(embeds, empty_cache(self.spec))
        self.memory_rebuilds += 1
        return self.backend.heads(hidden[-self.tokens_per_frame:])

    def _fuse(self, keyframe: Keyframe, heads: dict[str, np.ndarray]) -> None:
        """Add the keyframe's BEV points (its vision rows; their sub-patch points where the model has
        a map head) to the map grid, in the map frame, and keep the places its tokens point at; both
        moved along their rays by the floor's scale where the camera's mount is known."""
        anchor_pose = self.memory[0].map_pose
        # the heads' points are in the anchor's axes, or (bev_frame "camera") in the keyframe's own
        frame = keyframe.map_pose if self.spec.bev_frame == "camera" else anchor_pose
        to_map = rot_z(frame[2])[:2, :2].T
        mean, sigma = split_gaussian(heads["bev"][1:])
        points = mean @ to_map + frame[:2]
        if "map_head" in heads:
            sub, logits = split_map_head(heads["map_head"][1:], self.spec.map_subdivision ** 2)
            sub_mean, sub_sigma = split_gaussian(sub)
            sub_points, probs, camera = sub_mean @ to_map + frame[:2], softmax(logits), keyframe.map_pose[:2]
            keyframe.map_scale = self._floor_scale(keyframe, sub_points - camera, probs)
            self.grid.add(camera + (sub_points - camera) * keyframe.map_scale, sub_sigma * keyframe.map_scale, probs,
                          camera)
        else:
            self.grid.add(points, sigma, softmax(heads["semantic_logits"][1:]), keyframe.map_pose[:2])
        keyframe.pointer_points = points
        keyframe.class_probs = softmax(heads["semantic_logits"][1:])
        if "pointer_key" in heads:
            keyframe.pointer_keys = heads["pointer_key"][1:]
        if "object_centre_offset" in heads:  # model.object_centre: the offsets are in the anchor's axes
            anchor_to_map = rot_z(anchor_pose[2])[:2, :2].T
            keyframe.pointer_points = points + heads["object_centre_offset"][1:, :2] @ anchor_to_map
        if "object_front" in heads:  # model.object_front: the fronts are in the points' axes
            keyframe.pointer_fronts = heads["object_front"][1:] @ to_map
        if keyframe.map_scale != 1.0:  # the pointer's places at the floor's scale too, as the map's points
            camera = keyframe.map_pose[:2]
            keyframe.pointer_points = camera + (keyframe.pointer_points - camera) * keyframe.map_scale

    # --- map --------------------------------------------------------------------------------

    def _floor_scale(self, keyframe: Keyframe, offsets: np.ndarray, probs: np.ndarray) -> float:
        """The factor a keyframe's map points move by along their rays (1 without a camera mount or
        intrinsics): offsets (P, 2) from the camera, probs (P, classes) the map head's labels."""
        if self.camera_mount is None or keyframe.intrinsics is None or "floor" not in self.spec.label_names:
            return 1.0
        floor = floor_distances(keyframe.intrinsics, self.camera_mount, patch_grid(self.spec),
                                self.spec.map_subdivision)
        is_floor = probs.argmax(axis=1) == self.spec.label_names.index("floor")
        return keyframe_scale(np.linalg.norm(offsets, axis=1), floor, is_floor, self.config.floor_scale)

    def layout(self) -> Layout:
        """The current map (recomputed only after new keyframes)."""
        if self._layout is None:
            stamp = self.memory[-1].stamp_ns if self.memory else 0
            self._layout = self.grid.layout(stamp)
        return self._layout

    def trajectory_xy(self) -> np.ndarray:
        return np.array([pose[:2] for _, pose in self.trajectory]).reshape(-1, 2)

    # --- questions --------------------------------------------------------------------------

    def ask(self, question: str, situation: str | None = None) -> Answer:
        question = self._text(question, "question")
        situation = self._text(situation, "situation") if situation is not None else PSEUDO_SITUATION
        ids = self.backend.text.encode(prompt_text(situation, question))
        self._check_room(len(ids) + self.config.max_answer_tokens)
        hidden, cache = self.backend.decode(self.backend.embed_tokens(ids), self.cache)
        asker = self._asker(ids, hidden)
        if situation is not PSEUDO_SITUATION and not self._placed(asker):
            raise QuestionError(f"cannot place the situation (uncertainty {max(asker.sigma_x, asker.sigma_y):.1f} m, "
                                f"at most {self.config.placeable_sigma} m) to answer from it")
        readout = self._answer_readout(hidden[-1:], asker)  # the prompt ends with <answer>
        from_map = self._map_answer(question, asker, self.config.map_answer_types)
        forced = self.backend.text.encode(answer_text(from_map)) if from_map else None
        generated, probability = self._decode_answer(hidden[-1:], cache, readout, forced)
        text = self.backend.text.decode(generated)
        challenger = "" if from_map else self._map_answer(question, asker, self.config.map_tiebreak_types)
        if challenger and challenger != text:
            tokens, challenged = self._decode_answer(hidden[-1:], cache, readout,
                                                     self.backend.text.encode(answer_text(challenger)))
            if map_breaks_tie(probability, challenged):
                return Answer(self.backend.text.decode(tokens), challenged, asker, "map")
        return Answer(text, probability, asker, "map" if from_map else "model")

    def _map_answer(self, question: str, asker: PlanarPose, types: tuple[str, ...]) -> str:
        """The rules' answer from the map's objects where the question's type is one of `types`
        and the map is trusted ("" otherwise, or where it holds no candidate)."""
        kind = question_type(question)
        if kind not in map_answered_types(types, self.keyframes_with_odometry, self.keyframes_with_visual_odometry,
                                          self.keyframes_fused):
            return ""
        return answer_by_rules(kind, question, self.layout().objects, np.array([asker.x, asker.y]), asker.yaw)

    def _decode_answer(self, answer_state: np.ndarray, cache: KVCache, readout: dict[str, np.ndarray],
                       forced: np.ndarray | None) -> tuple[list[int], float]:
        """Greedy answer tokens after the prompt (answer_state: the <answer> row), or the `forced`
        ones (ending in <eos>); with the model's probability of them."""
        generated: list[int] = []
        log_probs: list[float] = []
        logits = without_eos(self._answer_logits(answer_state, readout), self.spec.eos_token_id)
        for step in range(len(forced) if forced is not None else self.config.max_answer_tokens):
            token = int(forced[step]) if forced is not None else int(np.argmax(logits))
            log_probs.append(float(np.log(softmax(logits)[token])))
            if token == self.spec.eos_token_id:
                break
            generated.append(token)
            hidden, cache = self.backend.decode(self.backend.embed_tokens(np.array([token])), cache)
            logits = self._answer_logits(hidden, readout)
        return generated, float(np.exp(np.mean(log_probs)))

    def _answer_logits(self, hidden: np.ndarray, readout: dict[str, np.ndarray]) -> np.ndarray:
        """(vocab,) logits of the one answer token whose last-layer state is hidden (1, H): its state
        gains the readout's context, and with a copy path its label tokens the gated vote."""
        heads = self.backend.heads(hidden + readout.get("context", 0.0))
        logits = heads["logits"][0]
        if "copy" in readout:
            logits = logits + heads["answer_copy_gate"][0] * readout["copy"][0]
        return logits

    def _answer_readout(self, answer_state: np.ndarray, asker: PlanarPose) -> dict[str, np.ndarray]:
        """What every answer token gains (runtime.backend.answer_outputs): the answer readout's
        reads of the memory's tokens as the placed asker sees them, through the answer graph
        (model.modeling_loc3r.AnswerReadout); nothing without one."""
        if not self.spec.answer_readout_heads:
            return {}
        heads = self.backend.heads(answer_state)
        count = self.spec.answer_readout_heads
        reads = answer_reads(heads["answer_query"][0].reshape(count, -1), heads["answer_gate"][0].reshape(count, -1),
                             np.concatenate([k.pointer_keys for k in self.memory]),
                             np.concatenate([k.pointer_points for k in self.memory]),
                             np.concatenate([k.class_probs for k in self.memory]),
                             np.array([asker.x, asker.y]), asker.yaw, self.spec.answer_sector_features,
                             self.spec.answer_spread_reads)
        return self.backend.answer(reads[None].astype(np.float32))

    def localize(self, situation: str) -> Localization:
        """Where the situation's text puts the asker (the <Pos>/<Ori> readout, no answer decoded)."""
        text = f"{SITUATION}{self._text(situation, 'situation')}{POS}{ORI}"
        ids = self.backend.text.encode(text)
        self._check_room(len(ids))
        hidden, _ = self.backend.decode(self.backend.embed_tokens(ids), self.cache)
        pose = self._asker(ids, hidden)
        return Localization(pose, self._placed(pose))

    def _placed(self, pose: PlanarPose) -> bool:
        """Inside the map and no vaguer than placeable_sigma."""
        inside = self.grid.cell_of(np.array([pose.x, pose.y]))[2]
        return bool(inside) and max(pose.sigma_x, pose.sigma_y) <= self.config.placeable_sigma

    def _asker(self, ids: np.ndarray, hidden: np.ndarray) -> PlanarPose:
        rows = [int(np.flatnonzero(ids == token)[0]) for token in (self.spec.pos_token_id, self.spec.ori_token_id)]
        heads = self.backend.heads(hidden[rows])
        anchor = self.memory[0].map_pose
        mean, sigma = split_gaussian(heads["pos"][0])
        logits = heads["ori_logits"][1]
        if "pointer_query" in heads:  # the model's own points, pointed at over the whole memory (map frame)
            keys = np.concatenate([k.pointer_keys for k in self.memory])
            points = np.concatenate([k.pointer_points for k in self.memory])
            second = [heads["pointer_query_second"][0]] if "pointer_query_second" in heads else []
            weights = pointer_attention(np.stack([heads["pointer_query"][0], *second, heads["pointer_query"][1]]), keys)
            places = weights @ points
            at, faced = places[:-1].mean(axis=0), places[-1]
            rotation = rot_z(anchor[2])[:2, :2]
            position = at + rotation @ mean  # the head's offset is in the anchor's frame
            # the mean fronts of what <Ori> and <Pos> point at, in the map frame
            fronts = pointed_fronts(weights, np.concatenate([k.pointer_fronts for k in self.memory])) \
                if "front_gain" in heads else None
            if "pos_relative" in heads:  # ... and these along the directions to the faced place and the path
                viewer = np.sum([k.map_pose[:2] for k in self.memory], axis=0) / len(self.memory)
                front = fronts[1] if self.spec.front_offset else None  # ... and along <Pos>'s front
                position = position + relative_offsets(heads["pos_relative"][0], at, faced, viewer, front)
            toward = faced - position
            logits = logits + facing_bump(len(logits), math.atan2(toward[1], toward[0]) - anchor[2],
                                          self.spec.pointer_kappa)
            if fronts is not None:  # ... and towards or against the fronts of what they point at
                logits = logits + front_bump(heads["front_gain"][1], fronts @ rotation, len(logits))  # anchor's axes
            mean = relative_planar(anchor, np.array([*position, 0.0]))[:2]
            # per axis of the anchor's frame, as trained: each <Pos> place's spread, averaged
            spread = np.mean([w @ (((points - p) @ rotation) ** 2) for w, p in zip(weights[:-1], places[:-1],
                                                                                    strict=True)], axis=0)
            _, sigma = split_gaussian(np.concatenate([mean, widened_log_sigma(heads["pos"][0, 2:4], spread)]))
        yaw, concentration = circular_soft_argmax(logits)
        x, y, heading = compose_planar(anchor, np.array([mean[0], mean[1], float(yaw)]))
        return PlanarPose(float(x), float(y), float(heading), float(sigma[0]), float(sigma[1]),
                          float(circular_std(concentration)))

    def _text(self, text: object, what: str) -> str:
        if not isinstance(text, str):
            raise QuestionError(f"the {what} must be text")
        text = text.strip()
        if not text:
            raise QuestionError(f"the {what} is empty")
        if len(text) > self.config.max_text_chars:
            raise QuestionError(f"the {what} has {len(text)} characters; at most {self.config.max_text_chars}")
        return text

    def _check_room(self, tokens: int) -> None:
        if not self.memory:
            raise QuestionError("no frames yet: the model has seen nothing to answer from")
        if self.memory_tokens() + tokens > self.spec.max_positions:
            raise QuestionError(f"the text is too long for the model ({tokens} tokens after "
                                f"{self.memory_tokens()} of memory; the model takes {self.spec.max_positions})")
