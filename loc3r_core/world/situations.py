"""Situations (where an agent stands, in words) and situated questions with short answers.

A situation names objects seen in the video ("I am sitting on the edge of the bed, facing the
desk"); its `relations` state in structured form what the text claims, with the thresholds
below, so the claim can be checked against the ground truth. Questions are asked from the
situation's position and facing direction; only unambiguous ones are kept (nothing near a
sector boundary, no near-ties).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from loc3r_core.geometry import heading_to, wrap_angle
from loc3r_core.world.freespace import FreeSpace
from loc3r_core.world.polygon import distance_to_box, from_box_frame, to_box_frame
from loc3r_core.world.scene import Question, Scene, SceneObject, Situation
from loc3r_core.world.vocabulary import CATEGORY_BY_NAME, LABELS

QUESTION_TYPES = ("direction", "distance", "nearest", "count", "what_direction")
DIRECTIONS = ("front", "left", "behind", "right")  # sectors of 90 degrees, centred on 0, 90, 180, -90

# What a relation means in the ground truth (the generator stays well inside these).
NEAR_MAX_M = 0.8  # "next to A": footprint distance at most this
FACING_MAX_DEG = 20.0  # "facing B": B's centre within this of the facing direction
BETWEEN_MAX_OFFSET_M = 0.4  # "between A and C": this close to the segment joining their centres
BETWEEN_T = (0.3, 0.7)  # ... and this far along it
SECTOR_MARGIN_DEG = 12.0  # direction answers keep clear of sector boundaries by this
TOO_CLOSE_M = 0.6  # objects nearer than this have no meaningful direction
DISTANCE_STEP_M = 0.5  # distance answers are rounded to this
MIN_ASKED_DISTANCE_M = 0.25  # nobody asks how far away the thing they touch is
NEAR_TIE_M = 0.5  # "closest"/"closer"/"what is on my left" need the answer this much nearer than rivals
# Where the generator places an asker, metres (drawn uniformly in these ranges).
NEXT_TO_GAP_M = (0.3, 0.55)  # "next to A": this far outside A's footprint
IN_FRONT_GAP_M = (0.4, 0.7)  # "in front of A": this far ahead of A's front face
DOOR_STEP_M = (0.45, 0.7)  # "just come in through the door": this far inside the door
SEAT_EDGE_INSET_M = 0.2  # "on the edge of the bed": this far inside the seat's outline

PLURALS = {"shelf": "shelves", "trash can": "trash cans"}
# The questions' phrasings ({x}, {y}: object labels; count questions take plurals). The runtime
# recognises these (question_type) to answer some types from its map.
SECTOR_QUESTIONS = {"front": "What is in front of me?", "left": "What is on my left?",
                    "behind": "What is behind me?", "right": "What is on my right?"}
QUESTION_TEMPLATES = {
    "direction": ("Is the {x} to my left, right, front or behind?",
                  "Where is the {x} relative to me: front, behind, left or right?",
                  "In which direction is the {x} from me?"),
    "distance": ("How far away is the {x} from me?", "What is the distance between me and the {x}?"),
    "nearest": ("Which object is closest to me?", "Which is closer to me, the {x} or the {y}?"),
    "count": ("How many {x} are there in the room?", "How many {x} are in front of me?"),
    "what_direction": tuple(SECTOR_QUESTIONS.values()),
}
SITUATIONS_PER_SCENE = 8
QUESTIONS_PER_SITUATION = 6


PLACEMENTS = ("next_to", "on", "in_front_of", "between", "door")  # how a situation's first relation places it


def placement_kind(scene: Scene, situation: Situation) -> str:
    """Which of PLACEMENTS (which maker's rule) placed the situation: its first relation, except
    "near" the door, which is "door" when the asker has come in through it (_through_door)."""
    first = situation.relations[0]
    if first["relation"] != "near":
        return first["relation"]
    through = scene.object(first["object_id"]).label == "door" and "through the door" in situation.text
    return "door" if through else "next_to"


# How a situation's facing relates to the front of an object it names (the generator's rules):
# "in front of the shelf, looking at it" faces against the shelf's front, one sits on a chair
# facing where the chair faces, every other placement faces a place (FACING_RULES[0]).
FACING_RULES = ("towards a place", "against the named object's front", "along the seat's front")


def facing_rule(scene: Scene, situation: Situation) -> int:
    """Index into FACING_RULES of the rule the generator faced the situation by."""
    first = situation.relations[0]
    if first["relation"] == "in_front_of":
        return 1
    if first["relation"] == "on" and scene.object(first["object_id"]).label == "chair":
        return 2
    return 0


def plural(label: str) -> str:
    return PLURALS.get(label, label + "s")


_LABEL_PATTERN = re.compile(
    r"\b(" + "|".join(sorted({re.escape(w) for label in LABELS for w in (label, plural(label))}, key=len,
                             reverse=True)) + r")\b")
_SINGULAR = {plural(label): label for label in LABELS} | {label: label for label in LABELS}


def labels_in(text: str) -> list[str]:
    """Object labels a sentence mentions, in order, plurals made singular."""
    return [_SINGULAR[match] for match in _LABEL_PATTERN.findall(text.lower())]


def _template_pattern(template: str) -> re.Pattern:
    """A template as a pattern: any case and spacing, the question mark optional, labels in the slots."""
    words = r"\s+".join(re.escape(word) for word in template.rstrip("?").split())
    return re.compile(r"\s*" + words.replace(r"\{x\}", _LABEL_PATTERN.pattern).replace(r"\{y\}", _LABEL_PATTERN.pattern)
                      + r"\s*\??\s*", re.IGNORECASE)


_TEMPLATE_PATTERNS = {qtype: [_template_pattern(t) for t in templates]
                      for qtype, templates in QUESTION_TEMPLATES.items()}


def question_type(text: str) -> str | None:
    """The type of a question asked in one of the generator's phrasings (QUESTION_TEMPLATES), else None."""
    return next((qtype for qtype, patterns in _TEMPLATE_PATTERNS.items()
                 if any(p.fullmatch(text) for p in patterns)), None)


def bearing(position: np.ndarray, yaw: float, target: np.ndarray) -> float:
    """Angle of target as seen from position facing yaw, radians, positive to the left."""
    return float(wrap_angle(heading_to(position, target) - yaw))


def direction_of(bearing_rad: float) -> str:
    index = int(((math.degrees(bearing_rad) + 45.0) % 360.0) // 90.0)
    return DIRECTIONS[index]


def near_sector_boundary(bearing_rad: float, margin_deg: float = SECTOR_MARGIN_DEG) -> bool:
    offset = (math.degrees(bearing_rad) - 45.0) % 90.0
    return offset < margin_deg or offset > 90.0 - margin_deg


def rounded_distance(distance: float) -> str:
    return f"{round(distance / DISTANCE_STEP_M) * DISTANCE_STEP_M:.1f} m"


def make_situations(
    rng: np.random.Generator, scene: Scene, free: FreeSpace, visible_ids: set[int]
) -> list[Situation]:
    """Up to SITUATIONS_PER_SCENE situations with their questions, in the scene's frame."""
    counts = Counter(o.label for o in scene.objects)
    nameable = [o for o in scene.objects if o.id in visible_ids and counts[o.label] == 1]
    makers: list[Callable] = [_next_to, _sitting_on, _in_front_of, _between, _through_door]
    situations: list[Situation] = []
    for _ in range(SITUATIONS_PER_SCENE * 8):
        if len(situations) == SITUATIONS_PER_SCENE or len(nameable) < 2:
            break
        made = makers[rng.integers(len(makers))](rng, scene, free, nameable)
        if made is None or _repeats(made, situations):
            continue
        position, yaw, text, relations = made
        situation = Situation(len(situations), position, yaw, text, tuple(relations))
        questions = make_questions(rng, scene, situation, nameable, visible_ids)
        situations.append(Situation(situation.id, position, yaw, text, tuple(relations), tuple(questions)))
    return situations


# --- situations -----------------------------------------------------------------------------

Made = tuple[np.ndarray, float, str, list[dict]] | None
MAX_PER_ANCHOR = 2  # situations placed by the same object
MIN_SPACING_M, MIN_TURN_DEG = 0.4, 25.0  # closer in place and facing counts as the same spot


def _anchor_of(relations: Sequence[dict]) -> tuple[int, ...]:
    """The object(s) of a situation's first relation: what places it."""
    first = relations[0]
    return tuple(first["object_ids"]) if "object_ids" in first else (first["object_id"],)


def _repeats(made: tuple, earlier: list[Situation]) -> bool:
    """Same words, same spot, or an anchor object that already placed enough situations."""
    position, yaw, text, relations = made
    uses = sum(1 for s in earlier if _anchor_of(s.relations) == _anchor_of(relations))
    same_spot = any(
        np.linalg.norm(s.position - position) < MIN_SPACING_M
        and abs(wrap_angle(s.yaw - yaw)) < math.radians(MIN_TURN_DEG)
        for s in earlier
    )
    return uses >= MAX_PER_ANCHOR or same_spot or any(s.text == text for s in earlier)


def _pick(rng: np.random.Generator, items: Sequence) -> object:
    return items[rng.integers(len(items))]


def _face(rng: np.random.Generator, position: np.ndarray, target: SceneObject) -> float:
    """Facing the target's centre, give or take a few degrees."""
    jitter = float(np.clip(rng.normal(0, math.radians(4)), -math.radians(8), math.radians(8)))
    return float(wrap_angle(heading_to(position, target.center[:2]) + jitter))


def ring_around(obj: SceneObject, gap: float, count: int = 48) -> np.ndarray:
    """Points at a distance `gap` outside the object's footprint, all around it."""
    half = obj.size[:2] / 2 + gap
    t = np.linspace(0, 2 * math.pi, count, endpoint=False)
    square = np.stack([np.cos(t), np.sin(t)], axis=1)
    square /= np.abs(square).max(axis=1, keepdims=True)  # onto the unit square's boundary
    return from_box_frame(square * half, obj.center[:2], obj.yaw)


def _next_to(rng: np.random.Generator, scene: Scene, free: FreeSpace, nameable: list[SceneObject]) -> Made:
    anchor = _pick(rng, nameable)
    target = _pick(rng, [o for o in nameable if o.id != anchor.id])
    spots = ring_around(anchor, rng.uniform(*NEXT_TO_GAP_M))
    spots = spots[free.is_free(spots)]
    toward = np.linalg.norm(spots - target.center[:2], axis=1) < np.linalg.norm(anchor.center[:2] - target.center[:2])
    if toward.any():  # stand on the side of the anchor that faces the target: less ambiguous
        spots = spots[toward]
    if len(spots) == 0:
        return None
    position = spots[rng.integers(len(spots))]
    text = _pick(rng, ("I am standing next to the {a}, facing the {b}.",
                       "I'm standing beside the {a} and looking at the {b}.",
                       "Standing by the {a}, I am facing the {b}.")).format(a=anchor.label, b=target.label)
    relations = [{"relation": "near", "object_id": anchor.id}, {"relation": "facing", "object_id": target.id}]
    return position, _face(rng, position, target), text, relations


def _sitting_on(rng: np.random.Generator, scene: Scene, free: FreeSpace, nameable: list[SceneObject]) -> Made:
    seats = [o for o in nameable if CATEGORY_BY_NAME[o.label].can_sit_on]
    if not seats:
        return None
    seat = _pick(rng, seats)
    others = [o for o in nameable if o.id != seat.id]
    if seat.label == "chair":  # one sits on a chair facing where it faces
        position, yaw = seat.center[:2].copy(), seat.yaw
        ahead = [o for o in others if abs(bearing(position, yaw, o.center[:2])) < math.radians(FACING_MAX_DEG - 5)]
        if not ahead:
            return None
        target = min(ahead, key=lambda o: np.linalg.norm(o.center[:2] - position))
        text = f"I am sitting on the chair, facing the {target.label}."
    else:  # on the edge of a bed or sofa nearest to what one faces
        target = _pick(rng, others)
        local = to_box_frame(target.center[:2], seat.center[:2], seat.yaw)
        inner = seat.size[:2] / 2 - SEAT_EDGE_INSET_M
        position = from_box_frame(np.clip(local, -inner, inner), seat.center[:2], seat.yaw)
        yaw = _face(rng, position, target)
        text = _pick(rng, ("I am sitting on the edge of the {a}, facing the {b}.",
                           "I am sitting on the {a} looking towards the {b}.")).format(a=seat.label, b=target.label)
    relations = [{"relation": "on", "object_id": seat.id}, {"relation": "facing", "object_id": target.id}]
    return position, float(yaw), text, relations


def _in_front_of(rng: np.random.Generator, scene: Scene, free: FreeSpace, nameable: list[SceneObject]) -> Made:
    fronted = [o for o in nameable if o.label in ("cabinet", "shelf", "tv", "desk", "sofa", "door", "bed")]
    if not fronted:
        return None
    anchor = _pick(rng, fronted)
    position = from_box_frame(np.array([anchor.size[0] / 2 + rng.uniform(*IN_FRONT_GAP_M), 0.0]), anchor.center[:2],
                              anchor.yaw)
    if not free.is_free(position):
        return None
    text = _pick(rng, ("I am standing in front of the {a}, looking at it.",
                       "I am in front of the {a} and facing it.")).format(a=anchor.label)
    relations = [{"relation": "in_front_of", "object_id": anchor.id}, {"relation": "facing", "object_id": anchor.id}]
    return position, _face(rng, position, anchor), text, relations


def _between(rng: np.random.Generator, scene: Scene, free: FreeSpace, nameable: list[SceneObject]) -> Made:
    if len(nameable) < 3:
        return None
    first, second = (nameable[i] for i in rng.choice(len(nameable), size=2, replace=False))
    span = np.linalg.norm(second.center[:2] - first.center[:2])
    position = first.center[:2] + (second.center[:2] - first.center[:2]) * rng.uniform(0.4, 0.6)
    if not 1.5 <= span <= 5.0 or not free.is_free(position):
        return None
    target = _pick(rng, [o for o in nameable if o.id not in (first.id, second.id)])
    text = (f"I am standing between the {first.label} and the {second.label}, "
            f"facing the {target.label}.")
    relations = [{"relation": "between", "object_ids": [first.id, second.id]},
                 {"relation": "facing", "object_id": target.id}]
    return position, _face(rng, position, target), text, relations


def _through_door(rng: np.random.Generator, scene: Scene, free: FreeSpace, nameable: list[SceneObject]) -> Made:
    doors = [o for o in nameable if o.label == "door"]
    if not doors:
        return None
    door = doors[0]
    position = from_box_frame(np.array([rng.uniform(*DOOR_STEP_M), 0.0]), door.center[:2], door.yaw)
    if not free.is_free(position):
        return None
    target = _pick(rng, [o for o in nameable if o.id != door.id])
    text = f"I have just come in through the door and I am looking at the {target.label}."
    relations = [{"relation": "near", "object_id": door.id}, {"relation": "facing", "object_id": target.id}]
    return position, _face(rng, position, target), text, relations


# --- questions ------------------------------------------------------------------------------


def make_questions(
    rng: np.random.Generator, scene: Scene, situation: Situation, nameable: list[SceneObject], seen_ids: set[int]
) -> list[Question]:
    """A balanced handful of unambiguous questions asked from the situation, about seen objects.

    Distances are floor distances to an object's footprint (its nearest side); directions are
    bearings of its centre.
    """
    position, yaw = situation.position, situation.yaw
    candidates: dict[str, list[Question]] = {t: [] for t in QUESTION_TYPES}
    for obj in nameable:
        distance = floor_distance(position, obj)
        b = bearing(position, yaw, obj.center[:2])
        if distance >= TOO_CLOSE_M and not near_sector_boundary(b):
            template = _pick(rng, QUESTION_TEMPLATES["direction"])
            candidates["direction"].append(
                Question("direction", template.format(x=obj.label), direction_of(b), (obj.id,)))
        steps = distance / DISTANCE_STEP_M
        if distance >= MIN_ASKED_DISTANCE_M and abs(steps - math.floor(steps) - 0.5) > 0.15:  # clear of rounding
            template = _pick(rng, QUESTION_TEMPLATES["distance"])
            candidates["distance"].append(
                Question("distance", template.format(x=obj.label), rounded_distance(distance), (obj.id,)))

    candidates["nearest"] += _nearest_questions(rng, scene, position, nameable, seen_ids)
    candidates["count"] += _count_questions(rng, scene, position, yaw, seen_ids)
    candidates["what_direction"] += _what_direction_questions(scene, position, yaw, seen_ids)

    chosen: list[Question] = []
    for _ in range(2):  # at most two of a type, types in random order
        for qtype in rng.permutation(QUESTION_TYPES):
            pool = candidates[str(qtype)]
            if pool and len(chosen) < QUESTIONS_PER_SITUATION:
                chosen.append(pool.pop(int(rng.integers(len(pool)))))
    return chosen


def floor_distance(position: np.ndarray, obj: SceneObject) -> float:
    """Distance on the floor from a position to the object's footprint; 0 on or inside it."""
    return float(distance_to_box(position, obj.center[:2], obj.size[:2], obj.yaw))


def _nearest_questions(
    rng: np.random.Generator, scene: Scene, position: np.ndarray, nameable: list[SceneObject], seen_ids: set[int]
) -> list[Question]:
    questions = []
    ranked = sorted(scene.objects, key=lambda o: floor_distance(position, o))
    closest = ranked[0]
    rival = next((o for o in ranked[1:] if o.label != closest.label), None)
    clear = rival is None or floor_distance(position, rival) - floor_distance(position, closest) >= NEAR_TIE_M
    if clear and closest.id in seen_ids:
        questions.append(Question("nearest", QUESTION_TEMPLATES["nearest"][0], closest.label, (closest.id,)))
    if len(nameable) >= 2:
        a, b = (nameable[i] for i in rng.choice(len(nameable), size=2, replace=False))
        da, db = floor_distance(position, a), floor_distance(position, b)
        if abs(da - db) >= NEAR_TIE_M:
            closer = a if da < db else b
            questions.append(Question("nearest", QUESTION_TEMPLATES["nearest"][1].format(x=a.label, y=b.label),
                                      closer.label, (closer.id,)))
    return questions


def _count_questions(
    rng: np.random.Generator, scene: Scene, position: np.ndarray, yaw: float, seen_ids: set[int]
) -> list[Question]:
    """Counts of a label every instance of which was seen; "in the room" is not situated."""
    by_label: dict[str, list[SceneObject]] = {}
    for obj in scene.objects:
        by_label.setdefault(obj.label, []).append(obj)
    countable = sorted(label for label, objs in by_label.items() if all(o.id in seen_ids for o in objs))
    if not countable:
        return []
    label = _pick(rng, countable)
    same = by_label[label]
    in_room, in_front = (t.format(x=plural(label)) for t in QUESTION_TEMPLATES["count"])
    questions = [Question("count", in_room, str(len(same)), tuple(o.id for o in same), situated=False)]
    bearings = [bearing(position, yaw, o.center[:2]) for o in same]
    clear = all(abs(abs(math.degrees(b)) - 90.0) > SECTOR_MARGIN_DEG for b in bearings)
    if clear and all(floor_distance(position, o) >= TOO_CLOSE_M for o in same):
        ahead = tuple(o.id for o, b in zip(same, bearings, strict=True) if abs(b) < math.pi / 2)
        questions.append(Question("count", in_front, str(len(ahead)), ahead))
    return questions


def _what_direction_questions(scene: Scene, position: np.ndarray, yaw: float, seen_ids: set[int]) -> list[Question]:
    """"What is on my left?": the nearest object well inside that sector (the same 90-degree
    sectors as direction answers), asked only if no object of another label in or near the
    sector is about as near, and the answer was seen and is not under the asker's feet."""
    questions = []
    around = [o for o in scene.objects if floor_distance(position, o) > 0.0]  # what one sits on has no direction
    for k, direction in enumerate(DIRECTIONS):
        centre = math.radians(90.0 * k)
        offsets = {o.id: abs(float(wrap_angle(bearing(position, yaw, o.center[:2]) - centre))) for o in around}
        inside = [o for o in around if offsets[o.id] < math.radians(45.0 - SECTOR_MARGIN_DEG)]
        if not inside:
            continue
        answer = min(inside, key=lambda o: floor_distance(position, o))
        distance = floor_distance(position, answer)
        contenders = [o for o in around if offsets[o.id] < math.radians(45.0 + SECTOR_MARGIN_DEG)]
        tied = any(o.label != answer.label and floor_distance(position, o) < distance + NEAR_TIE_M for o in contenders)
        if not tied and answer.id in seen_ids and distance >= TOO_CLOSE_M:
            questions.append(Question("what_direction", SECTOR_QUESTIONS[direction], answer.label, (answer.id,)))
    return questions
