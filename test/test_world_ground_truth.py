"""The generated ground truth is checked geometrically, with this file's own pinhole and box
math (not the generator's helpers): depth lands on the room or in the boxes, instances in
their own boxes, the frame is anchored as documented, every situation's claims hold."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loc3r_core.world.scene import Scene
from loc3r_core.world.scene_io import SceneFolder

TOL = 0.02  # metres: depth is stored in millimetres; surfaces are exact otherwise


def load(path: Path) -> tuple[dict, Scene, list]:
    folder = SceneFolder(path)
    return folder.raw, folder.scene, folder.situations


def world_points(path: Path, scene: Scene, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Back-project depth/NNNN.png by hand: pixel centres at u + 0.5, OpenCV camera."""
    depth = np.asarray(Image.open(path / "depth" / f"{index:04d}.png")).astype(np.float64) / 1000.0
    instance = np.asarray(Image.open(path / "instance" / f"{index:04d}.png")).astype(np.int64)
    k = scene.intrinsics
    v, u = np.indices(depth.shape)
    x = (u + 0.5 - k.cx) / k.fx * depth
    y = (v + 0.5 - k.cy) / k.fy * depth
    camera = np.stack([x, y, depth], axis=-1)
    pose = scene.frames[index].T_world_camera
    world = camera @ pose[:3, :3].T + pose[:3, 3]
    return world, np.where(depth > 0, instance, -1)


def inside_polygon(polygon: np.ndarray, pts: np.ndarray) -> np.ndarray:
    inside = np.zeros(len(pts), dtype=bool)
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        straddles = (a[1] > pts[:, 1]) != (b[1] > pts[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = a[0] + (pts[:, 1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
        inside ^= straddles & (pts[:, 0] < x_cross)
    return inside


def distance_to_walls(polygon: np.ndarray, pts: np.ndarray) -> np.ndarray:
    best = np.full(len(pts), np.inf)
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        t = np.clip(((pts - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
        best = np.minimum(best, np.linalg.norm(pts - (a + t[:, None] * (b - a)), axis=1))
    return best


def in_box(obj, pts: np.ndarray, tol: float = TOL) -> np.ndarray:
    """Points (N, 3) inside the object's upright box (standing on the floor)."""
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    d = pts[:, :2] - obj.center[:2]
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)
    return (np.all(np.abs(local) <= obj.size[:2] / 2 + tol, axis=1)
            & (pts[:, 2] >= -tol) & (pts[:, 2] <= obj.size[2] + tol))


def footprint_distance(obj, p: np.ndarray) -> float:
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    d = p - obj.center[:2]
    local = np.abs([c * d[0] + s * d[1], -s * d[0] + c * d[1]])
    return float(np.linalg.norm(np.maximum(local - obj.size[:2] / 2, 0)))


def bearing_deg(position: np.ndarray, yaw: float, target: np.ndarray) -> float:
    heading = math.atan2(target[1] - position[1], target[0] - position[0])
    return (math.degrees(heading - yaw) + 180.0) % 360.0 - 180.0


# --- scene.json ---------------------------------------------------------------------------------

def test_scene_json_has_the_documented_keys(scene_dirs):
    for path in scene_dirs:
        raw = load(path)[0]
        assert {"room", "objects", "intrinsics", "frames"} <= set(raw)
        assert len(raw["room"]["polygon"]) >= 4
        assert [o["id"] for o in raw["objects"]] == list(range(1, len(raw["objects"]) + 1))
        for o in raw["objects"]:
            assert {"id", "label", "center", "size", "yaw"} <= set(o)
            assert len(o["center"]) == 3 and len(o["size"]) == 3
        assert set(raw["intrinsics"]) == {"fx", "fy", "cx", "cy", "width", "height"}
        for i, f in enumerate(raw["frames"]):
            assert f["index"] == i and np.asarray(f["T_world_camera"]).shape == (4, 4)
        stamps = [f["stamp"] for f in raw["frames"]]
        assert stamps[0] == 0.0 and all(np.diff(stamps) > 0)
        n = len(raw["frames"])
        for kind in ("rgb", "depth", "instance"):
            assert sorted(p.name for p in (path / kind).iterdir()) == [f"{i:04d}.png" for i in range(n)]
        assert Image.open(path / "depth" / "0000.png").mode.startswith("I")


def test_world_frame_is_anchored_to_the_first_camera(scene_dirs):
    for path in scene_dirs:
        _, scene, _ = load(path)
        first = scene.frames[0].T_world_camera
        assert abs(first[0, 3]) < 1e-5 and abs(first[1, 3]) < 1e-5, "origin is below the first camera"
        assert first[2, 3] > 0.1, "the first camera is above the floor"
        forward = first[:3, 2]  # OpenCV z: the viewing direction
        assert abs(forward[1]) < 1e-5 and forward[0] > 0, "x runs along the first view, projected on the floor"
        for frame in scene.frames:
            rotation = frame.T_world_camera[:3, :3]
            np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-5)
            assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-5)
            assert frame.T_world_camera[2, 2] < 0.5, "cameras look roughly level (pitch knob range)"


def test_objects_lie_in_the_room_without_overlap(scene_dirs):
    for path in scene_dirs:
        _, scene, _ = load(path)
        for obj in scene.objects:
            assert np.all(inside_polygon(scene.room.polygon, obj.footprint())), f"{path.name}: {obj.label} outside"
            assert obj.center[2] == pytest.approx(obj.size[2] / 2, abs=1e-5), "objects stand on the floor"
        # Sample each box densely; no sample may fall inside another box.
        grid = np.stack(np.meshgrid(np.linspace(-0.49, 0.49, 15), np.linspace(-0.49, 0.49, 15)), -1).reshape(-1, 2)
        for a in scene.objects:
            c, s = math.cos(a.yaw), math.sin(a.yaw)
            local = grid * a.size[:2]
            xy = local @ np.array([[c, s], [-s, c]]) + a.center[:2]
            pts = np.column_stack([xy, np.full(len(xy), 0.1)])
            for b in scene.objects:
                if b.id != a.id:
                    assert not in_box(b, pts, tol=0.0).any(), f"{path.name}: {a.label} overlaps {b.label}"


def test_l_shaped_rooms_are_covered(scene_dirs):
    shapes = Counter(len(load(p)[1].room.polygon) for p in scene_dirs)
    assert shapes[4] and shapes[6], f"want rectangles and L-shapes among the test scenes, got {shapes}"


def test_cameras_stay_in_free_space(scene_dirs):
    for path in scene_dirs:
        _, scene, _ = load(path)
        xy = scene.poses()[:, :2, 3]
        assert inside_polygon(scene.room.polygon, xy).all()
        assert distance_to_walls(scene.room.polygon, xy).min() > 0.25
        for obj in scene.objects:
            assert min(footprint_distance(obj, p) for p in xy) > 0.25, f"camera path touches the {obj.label}"


# --- depth and instances --------------------------------------------------------------------------

def test_depth_backprojects_onto_room_structure_or_object_boxes(scene_dirs):
    for path in scene_dirs:
        _, scene, _ = load(path)
        polygon, height = scene.room.polygon, scene.room.height
        boxes = {o.id: o for o in scene.objects}
        good = total = missing = 0
        for index in range(len(scene.frames)):
            world, instance = world_points(path, scene, index)
            pts, ids = world.reshape(-1, 3), instance.reshape(-1)
            missing += int((ids < 0).sum())
            structure = pts[ids == 0]
            floor = (np.abs(structure[:, 2]) <= TOL) & inside_polygon(polygon, structure[:, :2])
            ceiling = (np.abs(structure[:, 2] - height) <= TOL) & inside_polygon(polygon, structure[:, :2])
            wall = (distance_to_walls(polygon, structure[:, :2]) <= TOL) & (structure[:, 2] >= -TOL) \
                & (structure[:, 2] <= height + TOL)
            good += int((floor | ceiling | wall).sum())
            total += len(structure)
            for obj_id, obj in boxes.items():
                mine = pts[ids == obj_id]
                good += int(in_box(obj, mine).sum())
                total += len(mine)
        assert missing == 0, f"{path.name}: a closed room leaves no pixel without depth"
        assert good / total >= 0.99, f"{path.name}: only {good / total:.4f} of pixels land on the room or a box"


def test_each_objects_instance_pixels_backproject_into_its_own_box(scene_dirs):
    seen = Counter()
    for path in scene_dirs:
        _, scene, _ = load(path)
        for obj in scene.objects:
            inside = count = 0
            for index in range(len(scene.frames)):
                world, instance = world_points(path, scene, index)
                mine = world[instance == obj.id]
                inside += int(in_box(obj, mine).sum())
                count += len(mine)
            if count:
                seen[obj.label] += 1
                assert inside / count >= 0.99, f"{path.name}: {obj.label} {obj.id}: {inside}/{count} in its box"
    assert len(seen) >= 8, f"the test scenes should show most categories, saw {sorted(seen)}"


# --- situations and questions -----------------------------------------------------------------------

def plural(label: str) -> str:
    return {"shelf": "shelves"}.get(label, label + "s")


def visible_pixels(path: Path, scene: Scene) -> Counter:
    counts = Counter()
    for index in range(len(scene.frames)):
        ids, n = np.unique(np.asarray(Image.open(path / "instance" / f"{index:04d}.png")), return_counts=True)
        counts.update(dict(zip(ids.tolist(), n.tolist(), strict=True)))
    return counts


def test_every_situation_states_what_holds_in_the_ground_truth(scene_dirs):
    kinds = Counter()
    for path in scene_dirs:
        _, scene, situations = load(path)
        objects = {o.id: o for o in scene.objects}
        labels = Counter(o.label for o in scene.objects)
        seen = visible_pixels(path, scene)
        min_pixels = 0.005 * scene.intrinsics.width * scene.intrinsics.height
        for s in situations:
            named = set()
            for r in s.relations:
                kinds[r["relation"]] += 1
                ids = r.get("object_ids") or [r["object_id"]]
                named.update(ids)
                a = objects[ids[0]]
                if r["relation"] == "near":
                    assert footprint_distance(a, s.position) <= 0.8, s.text
                elif r["relation"] == "on":
                    assert footprint_distance(a, s.position) == 0.0, s.text
                elif r["relation"] == "facing":
                    assert abs(bearing_deg(s.position, s.yaw, a.center[:2])) <= 20.0, s.text
                elif r["relation"] == "in_front_of":
                    c, sn = math.cos(a.yaw), math.sin(a.yaw)
                    d = s.position - a.center[:2]
                    assert c * d[0] + sn * d[1] > a.size[0] / 2, s.text  # on the front side
                    assert abs(-sn * d[0] + c * d[1]) <= a.size[1] / 2, s.text
                elif r["relation"] == "between":
                    p, q = objects[ids[0]].center[:2], objects[ids[1]].center[:2]
                    t = float((s.position - p) @ (q - p) / ((q - p) @ (q - p)))
                    assert 0.3 <= t <= 0.7, s.text
                    assert np.linalg.norm(p + t * (q - p) - s.position) <= 0.4, s.text
                else:
                    raise AssertionError(f"unknown relation {r}")
            for obj_id in named:
                obj = objects[obj_id]
                assert obj.label in s.text, f"{s.text!r} should name the {obj.label}"
                assert labels[obj.label] == 1, f"{s.text!r} names an ambiguous {obj.label}"
                assert seen[obj_id] >= min_pixels, f"{s.text!r} names the {obj.label}, never seen in the video"
    assert set(kinds) == {"near", "on", "facing", "in_front_of", "between"}, kinds


def sector_offset(b: float, centre: float) -> float:
    return abs((b - centre + 180.0) % 360.0 - 180.0)


SECTORS = {"front": 0.0, "left": 90.0, "behind": 180.0, "right": -90.0}
ASKED_DIRECTION = {"What is in front of me?": "front", "What is on my left?": "left",
                   "What is behind me?": "behind", "What is on my right?": "right"}


def test_every_answer_holds_in_the_ground_truth(scene_dirs):
    """Distances are floor distances to footprints, directions are bearings of centres in
    90-degree sectors; every object a question is about was seen in the video."""
    types = Counter()
    for path in scene_dirs:
        _, scene, situations = load(path)
        objects = {o.id: o for o in scene.objects}
        pixels = visible_pixels(path, scene)
        seen = {i for i, n in pixels.items() if n >= 0.005 * scene.intrinsics.width * scene.intrinsics.height}
        for s in situations:
            assert s.questions, f"{s.text!r} has no questions"
            dist = {o.id: footprint_distance(o, s.position) for o in scene.objects}
            bearing = {o.id: bearing_deg(s.position, s.yaw, o.center[:2]) for o in scene.objects}
            for q in s.questions:
                types[q.type] += 1
                assert set(q.object_ids) <= seen, f"{q} is about an object never seen"
                assert q.situated == (q.type != "count" or q.question.endswith("in front of me?")), q
                if q.type == "direction":
                    assert sector_offset(bearing[q.object_ids[0]], SECTORS[q.answer]) < 45.0, q
                elif q.type == "distance":
                    assert q.answer.endswith(" m") and abs(float(q.answer[:-2]) - dist[q.object_ids[0]]) <= 0.25, q
                elif q.type == "nearest" and q.question == "Which object is closest to me?":
                    others = [o for o in scene.objects if o.label != q.answer]
                    assert all(dist[o.id] > dist[q.object_ids[0]] for o in others), q
                elif q.type == "nearest":
                    named = re.fullmatch(r"Which is closer to me, the (.+) or the (.+)\?", q.question).groups()
                    a, b = ([o for o in scene.objects if o.label == label] for label in named)
                    assert len(a) == len(b) == 1, f"{q} names ambiguous objects"
                    assert q.answer == min((a[0], b[0]), key=lambda o: dist[o.id]).label, q
                elif q.type == "count":
                    label = next(o.label for o in scene.objects if f"many {plural(o.label)} " in q.question)
                    same = [o for o in scene.objects if o.label == label]
                    assert all(o.id in seen for o in same), f"{q} counts objects never seen"
                    if q.question.endswith("in front of me?"):
                        same = [o for o in same if abs(bearing[o.id]) < 90.0]
                    assert q.answer == str(len(same)), q
                elif q.type == "what_direction":
                    centre = SECTORS[ASKED_DIRECTION[q.question]]
                    answer = objects[q.object_ids[0]]
                    assert answer.label == q.answer and sector_offset(bearing[answer.id], centre) < 45.0, q
                    in_sector = [o for o in scene.objects  # (the object one sits on has no direction)
                                 if sector_offset(bearing[o.id], centre) < 45.0 and dist[o.id] > 0.0]
                    assert all(dist[o.id] > dist[answer.id] for o in in_sector if o.label != answer.label), q
                else:
                    raise AssertionError(f"unknown question type {q.type}")
    assert set(types) == {"direction", "distance", "nearest", "count", "what_direction"}, types
