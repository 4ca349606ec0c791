"""`loc3r eval-map`: the map metrics on hand-made maps with known answers, the oracle-fed grid on
real scenes (near its ceiling; clearly worse when misregistered), and the command end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from loc3r_core.evaluation.map_quality import (
    BOX_METRICS,
    CELL_METRICS,
    OBJECT_METRICS,
    confidence_calibration,
    confusion,
    free_coverage,
    free_precision,
    map_frame,
    match_objects,
    object_scores,
    occupied_precision,
    score_layout,
    wall_points,
    wall_recall,
)
from loc3r_core.evaluation.map_run import Observation, fuse, map_grid, seen_ids, true_observations
from loc3r_core.geometry import Intrinsics, make_pose, rot_z
from loc3r_core.model.folder import SHIPPED_MODEL
from loc3r_core.runtime.mapping import GridConfig, LayoutGrid
from loc3r_core.runtime.spec import ModelSpec
from loc3r_core.types import FREE, OCCUPIED, UNKNOWN, Layout, MapObject
from loc3r_core.world.polygon import box_iou
from loc3r_core.world.scene import Room, Scene, SceneObject
from loc3r_core.world.scene_io import SceneFolder
from loc3r_core.world.vocabulary import PATCH_CLASSES

# --- a hand-made map of a 4 m square room with a 1 m table in the middle -------------------
# 0.1 m cells from (-1, -1): cell index k has its centre at -0.95 + 0.1 k, so the walls x = 0
# and x = 4 lie between cells 9|10 and 49|50, and the table (1.5..2.5) covers cells 25..34.

WALLS, TABLE = (9, 10, 49, 50), range(25, 35)


def square_scene(objects: tuple[SceneObject, ...] | None = None) -> Scene:
    table = SceneObject(1, "table", np.array([2.0, 2.0, 0.375]), np.array([1.0, 1.0, 0.75]), 0.0, (0.5, 0.5, 0.5))
    return Scene(Room(np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]]), 2.5),
                 (table,) if objects is None else objects, Intrinsics(50, 50, 48, 48, 96, 96), ())


def layout_of(occupancy: np.ndarray, objects: tuple[MapObject, ...] = ()) -> Layout:
    labels = np.where(occupancy == UNKNOWN, -1, 0).astype(np.int16)
    return Layout(occupancy.astype(np.int8), labels, tuple(PATCH_CLASSES), 0.1, (-1.0, -1.0), objects)


def perfect_grid() -> np.ndarray:
    """Occupied: the cells either side of every wall and the table's; free: the floor 0.1 m clear of both."""
    grid = np.full((60, 60), UNKNOWN)
    inner = np.zeros((60, 60), dtype=bool)
    inner[9:51, 9:51] = True
    inner[11:49, 11:49] = False
    grid[inner] = OCCUPIED
    grid[11:49, 11:49] = FREE
    grid[24:36, 24:36] = UNKNOWN  # cells whose centre is under 0.1 m from the table
    grid[25:35, 25:35] = OCCUPIED
    return grid


def test_perfect_hand_made_map_scores_one() -> None:
    scene, grid = square_scene(), perfect_grid()
    scores = score_layout(layout_of(grid), scene, np.eye(4))
    for key in CELL_METRICS:
        assert scores[key] == 1.0, key
    assert (grid == OCCUPIED).sum() == 320 + 100  # the wall ring (42² - 38²) and the table
    assert (grid == FREE).sum() == 38 * 38 - 12 * 12


def test_a_stray_cell_and_missing_floor_lower_the_scores_by_their_share() -> None:
    scene, grid = square_scene(), perfect_grid()
    grid[2, 30] = OCCUPIED  # (2.05, -0.75): 0.75 m outside the room, far from everything
    grid[30, 57] = FREE  # (4.75, 2.05): free, but outside the room
    assert occupied_precision(layout_of(grid), scene) == pytest.approx(420 / 421, abs=1e-12)
    assert free_precision(layout_of(grid), scene) == pytest.approx(1300 / 1301, abs=1e-12)
    grid[11:21, 11:49] = UNKNOWN  # ten rows of floor never seen
    assert free_coverage(layout_of(grid), scene) == pytest.approx((1300 - 380) / 1300, abs=1e-12)
    grid[24:36, 24:36] = FREE  # the table's 100 cells free too (its 44-cell rim is floor, just not clear floor)
    assert free_precision(layout_of(grid), scene) == pytest.approx((920 + 44) / (920 + 144 + 1), abs=1e-12)


def test_wall_recall_counts_wall_points_near_an_occupied_cell() -> None:
    scene = square_scene(())
    assert len(wall_points(scene.room.polygon)) == 160  # every 0.1 m along 16 m of wall
    grid = np.full((60, 60), UNKNOWN)
    assert wall_recall(layout_of(grid), scene) == 0.0
    grid[9:11, 9:51] = OCCUPIED  # only the y = 0 wall, its cells from x = -0.05 to 4.05
    # its 40 points, and 0.3 m up the two side walls: (4, 0..0.3) is 4 points, (0, 0.1..0.3) 3
    # ((0, 0) is the bottom wall's); (4, 0.4) is sqrt(0.05² + 0.35²) = 0.354 m from (4.05, 0.05)
    assert wall_recall(layout_of(grid), scene) == pytest.approx(47 / 160, abs=1e-12)
    assert math.isnan(occupied_precision(layout_of(np.full((60, 60), FREE)), scene))  # nothing to judge


# --- objects ----------------------------------------------------------------------------------


def thing(label: str, x: float, y: float) -> MapObject:
    return MapObject(0, label, np.array([x, y, 0.3]), np.array([0.3, 0.3, 0.6]), 0.0, 0.9)


def test_each_true_object_is_matched_once() -> None:
    chair = SceneObject(1, "chair", np.array([1.0, 1.0, 0.4]), np.array([0.5, 0.5, 0.8]), 0.0, (1, 0, 0))
    table = SceneObject(2, "table", np.array([3.0, 3.0, 0.4]), np.array([1.0, 1.0, 0.8]), 0.0, (0, 1, 0))
    found = [thing("chair", 1.0, 1.0), thing("chair", 1.1, 1.0), thing("chair", 0.9, 1.3),
             thing("sofa", 3.0, 3.0), thing("bed", 0.0, 4.0)]
    assert match_objects(found, [chair, table]) == [(0, 0)]
    scores = object_scores(found, [chair, table], seen_ids={1})
    assert (scores["objects_matched"], scores["objects_true"], scores["objects_map"]) == (1, 2, 5)
    assert scores["object_recall"] == 0.5
    assert scores["object_recall_seen"] == 1.0  # the table was never seen
    assert scores["object_precision"] == pytest.approx(1 / 5)
    assert scores["object_f1"] == pytest.approx(2 * 1 / (2 + 5))
    assert [right for _, right in scores["object_confidences"]] == [True, False, False, False, False]
    assert confusion(found, [chair, table]) == {"chair": {"chair": 1}, "spurious": {"chair": 2, "bed": 1},
                                                "table": {"sofa": 1}}
    # Greedy by distance: the object 0.15 m from chair B goes to B, not to A 0.35 m away.
    b = SceneObject(3, "chair", np.array([2.0, 1.0, 0.4]), np.array([0.5, 0.5, 0.8]), 0.0, (1, 0, 0))
    assert sorted(match_objects([thing("chair", 1.6, 1.0), thing("chair", 1.2, 1.0)], [chair, b])) == [(0, 1), (1, 0)]


def test_confidence_calibration_bins_the_map_objects_by_confidence() -> None:
    result = confidence_calibration([(0.55, True), (0.58, False), (0.95, True), (1.0, True)])
    assert [(b["low"], b["objects"], b["share_right"]) for b in result["bins"]] == [(0.5, 2, 0.5), (0.9, 2, 1.0)]
    assert result["bins"][0]["mean_confidence"] == pytest.approx(0.565)
    assert result["error"] == pytest.approx((2 * 0.065 + 2 * 0.025) / 4)  # |0.5 - 0.565| and |1 - 0.975|
    assert math.isnan(confidence_calibration([])["error"])


def test_box_iou_of_known_overlaps() -> None:
    assert box_iou((0, 0), (1, 1), 0.0, (0, 0), (1, 1), 0.0) == pytest.approx(1.0)
    assert box_iou((0, 0), (1, 1), 0.0, (0.5, 0), (1, 1), 0.0) == pytest.approx(1 / 3, abs=1e-3)  # 0.5 / 1.5
    assert box_iou((0, 0), (2, 1), 0.0, (0, 0), (1, 2), math.pi / 2) == pytest.approx(1.0)  # the same box turned
    assert box_iou((0, 0), (1, 1), 0.0, (0, 0), (1, 1), math.pi / 4) == pytest.approx(0.7071, abs=0.01)  # octagon
    assert box_iou((0, 0), (2, 2), 0.0, (0, 0), (1, 1), 0.3) == pytest.approx(0.25, abs=1e-3)  # inside: 1 / 4
    assert box_iou((0, 0), (1, 1), 0.0, (3, 0), (1, 1), 0.0) == 0.0


def test_box_metrics_score_the_matched_boxes_size() -> None:
    chair = SceneObject(1, "chair", np.array([1.0, 1.0, 0.4]), np.array([0.5, 0.5, 0.8]), 0.0, (1, 0, 0))
    right = MapObject(0, "chair", np.array([1.0, 1.0, 0.4]), np.array([0.5, 0.5, 0.8]), 0.0, 0.9)
    twice = MapObject(0, "chair", np.array([1.0, 1.0, 0.4]), np.array([1.0, 0.5, 0.8]), 0.0, 0.9)
    assert object_scores([right], [chair])["object_box_iou"] == pytest.approx(1.0)
    scores = object_scores([twice, thing("bed", 4.0, 4.0)], [chair])  # the unmatched bed counts for neither
    assert scores["object_box_iou"] == pytest.approx(0.5, abs=1e-3)
    assert scores["object_area_ratio"] == pytest.approx(2.0)
    assert all(math.isnan(object_scores([], [chair])[key]) for key in BOX_METRICS)  # nothing matched


# --- object extraction: known boxes fed as points ----------------------------------------------


def box_points(center: tuple[float, float], size: tuple[float, float], yaw: float, step: float = 0.04) -> np.ndarray:
    """A lattice of points (N, 2) filling an oriented footprint: several per 0.1 m cell."""
    u, v = np.meshgrid(np.arange(-size[0] / 2, size[0] / 2, step) + step / 2,
                       np.arange(-size[1] / 2, size[1] / 2, step) + step / 2)
    local = np.stack([u.ravel(), v.ravel()], axis=1)
    c, s = np.cos(yaw), np.sin(yaw)
    return local @ np.array([[c, s], [-s, c]]) + np.asarray(center)


def fused(*parts: tuple[str, np.ndarray], weight: float = 1.0, config: GridConfig | None = None,
          sigma: float = 0.05) -> Layout:
    """A fresh grid fed labelled points (one-hot, or `weight` of the label), the camera at the origin."""
    names = tuple(PATCH_CLASSES)
    grid = LayoutGrid(config or GridConfig(), names)
    for label, points in parts:
        probs = np.zeros((len(points), len(names)), dtype=np.float32)
        probs[:, names.index(label)] = weight
        probs[:, names.index("floor")] = 1.0 - weight
        grid.add(points, np.full_like(points, sigma), probs, np.zeros(2))
    return grid.layout()


def cells_in(layout: Layout, center: tuple[float, float], half: float) -> np.ndarray:
    """Occupancy of the cells whose centres lie within `half` of `center` on both axes."""
    xs = layout.origin[0] + (np.arange(layout.occupancy.shape[1]) + 0.5) * layout.resolution
    ys = layout.origin[1] + (np.arange(layout.occupancy.shape[0]) + 0.5) * layout.resolution
    return layout.occupancy[np.ix_(np.abs(ys - center[1]) < half, np.abs(xs - center[0]) < half)]


def test_rays_over_a_low_object_do_not_free_the_floor_under_it() -> None:
    # A 1 m table seen as two strips of its top with a gap between, and the floor beyond it
    # seen over it: the rays to the floor cross the gap.
    top = np.concatenate([box_points((2.0, 0.35), (1.0, 0.3), 0.0), box_points((2.0, -0.35), (1.0, 0.3), 0.0)])
    floor = np.stack([np.full(40, 3.5), np.linspace(-0.5, 0.5, 40)], axis=1)
    parts = [("table", top), ("floor", floor)]
    # one keyframe: free_beside_solid_min_views would hide the gap's freed cells beside the strips
    open_gap = cells_in(fused(*parts, config=GridConfig(fill_objects=False, free_beside_solid_min_views=1)),
                        (2.0, 0.0), 0.15)
    boxed = cells_in(fused(*parts, config=GridConfig(fill_objects=False, object_boxes_not_free=True,
                                                     free_beside_solid_min_views=1)), (2.0, 0.0), 0.15)
    closed = fused(*parts)
    assert (open_gap == FREE).any()  # without the closing, the rays free the table's middle
    assert not (boxed == FREE).any()  # ... and the table's box alone says it is not free
    assert (cells_in(closed, (2.0, 0.0), 0.15) == OCCUPIED).all()
    assert [o.label for o in closed.objects] == ["table"]
    assert (cells_in(closed, (2.0, 1.0), 0.15) != OCCUPIED).all()  # no halo: beside the table stays as it was


def test_rays_stop_short_of_an_uncertain_point() -> None:
    wall = np.stack([np.full(21, 3.0), np.linspace(-1.0, 1.0, 21)], axis=1)
    sure, unsure = fused(("wall", wall), sigma=0.05), fused(("wall", wall), sigma=0.5)
    assert (cells_in(sure, (2.6, 0.0), 0.15) == FREE).all()  # carved up to the point's own cell
    assert (cells_in(unsure, (2.7, 0.0), 0.12) == UNKNOWN).all()  # within a sigma of it: not known free
    assert (cells_in(unsure, (1.5, 0.0), 0.15) == FREE).all()


def test_object_extraction_recovers_known_oriented_boxes() -> None:
    boxes = {"sofa": ((2.0, 1.5), (2.0, 0.9), math.radians(30)), "table": ((-2.0, -1.5), (1.2, 0.7), math.radians(-20))}
    layout = fused(*((label, box_points(*box)) for label, box in boxes.items()))
    assert sorted(o.label for o in layout.objects) == ["sofa", "table"]
    for obj in layout.objects:
        center, size, yaw = boxes[obj.label]
        assert np.allclose(obj.center[:2], center, atol=0.1), obj
        assert abs(math.remainder(obj.yaw - yaw, math.pi)) < math.radians(5), obj  # a box's yaw is modulo pi
        assert np.allclose(obj.size[:2], size, atol=0.2), obj
        assert obj.confidence > 0.9
    scene = square_scene(tuple(SceneObject(i, label, np.array([*c, 0.4]), np.array([*s, 0.8]), yaw, (1, 0, 0))
                               for i, (label, (c, s, yaw)) in enumerate(boxes.items(), start=1)))
    assert object_scores(layout.objects, scene.objects)["object_box_iou"] >= 0.9  # 0.73 from the cells' extremes


def test_box_size_takes_off_the_points_own_scatter() -> None:
    # A 1.6 x 0.8 m sofa whose points scatter 0.15 m (variance 0.0225): the cells spread wider than
    # the sofa. Reported sigmas whose variance times the default share is 0.0225 take exactly that off.
    points = box_points((1.0, 2.0), (1.6, 0.8), 0.3)
    noisy = points + np.random.default_rng(0).normal(0.0, 0.15, points.shape)
    sigma = math.sqrt(0.0225 / GridConfig().box_noise_share)
    [plain] = fused(("sofa", noisy), sigma=sigma, config=GridConfig(box_noise_share=0.0)).objects
    [sofa] = fused(("sofa", noisy), sigma=sigma).objects
    assert plain.size[0] > 1.65
    assert sofa.size[0] == pytest.approx(1.6, abs=0.05)
    assert np.allclose(sofa.center[:2], (1.0, 2.0), atol=0.05)


def test_pieces_of_one_object_merge_and_separate_objects_and_weak_points_do_not() -> None:
    pieces = np.concatenate([box_points((0.0, 2.0), (0.4, 0.4), 0.0), box_points((0.9, 2.0), (0.4, 0.4), 0.0)])
    apart = np.concatenate([box_points((-3.0, -2.0), (0.4, 0.4), 0.0), box_points((-3.0, 0.0), (0.4, 0.4), 0.0)])
    layout = fused(("sofa", pieces), ("chair", apart))
    sofas = [o for o in layout.objects if o.label == "sofa"]
    assert len(sofas) == 1 and np.allclose(sofas[0].center[:2], (0.45, 2.0), atol=0.1)  # 0.5 m gap: one sofa
    assert sum(o.label == "chair" for o in layout.objects) == 2  # 1.6 m apart: two chairs
    assert fused(("lamp", np.array([[1.0, 1.0]])), weight=0.6).objects == ()  # one weak point is no object


# --- the oracle-fed grid on real scenes ---------------------------------------------------------


def oracle_inputs(path: Path) -> tuple[SceneFolder, np.ndarray, list[Observation]]:
    """Every frame a keyframe (no model needed: the fusion alone is under test), as many points a
    frame as the shipped model gives the map (4x4 patches of 4x4 sub-patches)."""
    folder = SceneFolder(path)
    T_world_map = map_frame(folder.scene)
    keyframes = tuple(f.index for f in folder.scene.frames)
    grid = map_grid(ModelSpec.from_checkpoint(SHIPPED_MODEL))
    return folder, T_world_map, list(true_observations(folder, keyframes, tuple(PATCH_CLASSES), grid, T_world_map))


def shifted(observations: list[Observation], dx: float) -> list[Observation]:
    offset = np.array([dx, 0.0])
    return [Observation(o.points + offset, o.sigma, o.probs, o.camera_xy + offset) for o in observations]


def test_oracle_fusion_scores_near_its_ceiling_and_a_misregistered_map_clearly_worse(world_by_kind) -> None:
    for path in sorted(world_by_kind["loop"].glob("scene_*")):
        folder, T_world_map, observations = oracle_inputs(path)
        seen = set(seen_ids(folder))
        names = tuple(PATCH_CLASSES)
        true = score_layout(fuse(iter(observations), GridConfig(), names), folder.scene, T_world_map, seen)
        off = score_layout(fuse(iter(shifted(observations, 0.6)), GridConfig(), names), folder.scene, T_world_map,
                           seen)
        # Measured on the two loop scenes: occupied precision 0.978 / 0.972, wall recall 0.96 / 1.00
        # (256 points a frame; with 16 it was 0.77 / 0.82); shifted by 0.6 m: 0.60 / 0.58 and 0.50 / 0.62.
        assert true["occupied_precision"] >= 0.85, true
        assert true["wall_recall"] >= 0.85, true
        assert true["free_precision"] >= 0.75, true
        assert off["occupied_precision"] <= true["occupied_precision"] - 0.25, off
        assert off["wall_recall"] <= true["wall_recall"] - 0.2, off


def test_scores_do_not_depend_on_where_the_world_frame_is(world_by_kind) -> None:
    folder, T_world_map, observations = oracle_inputs(sorted(world_by_kind["walk"].glob("scene_*"))[0])
    layout = fuse(iter(observations), GridConfig(), tuple(PATCH_CLASSES))
    moved_world = make_pose(rot_z(0.7), np.array([3.0, -2.0, 0.0]))
    moved = folder.scene.transformed(moved_world)
    assert np.allclose(map_frame(moved), moved_world @ T_world_map, atol=1e-9)
    a, b = score_layout(layout, folder.scene, T_world_map), score_layout(layout, moved, map_frame(moved))
    for key in (*CELL_METRICS, *OBJECT_METRICS):
        assert a[key] == pytest.approx(b[key], abs=1e-9), key


# --- the command ---------------------------------------------------------------------------


def test_cli_prints_json_and_writes_a_figure_per_scene(world_by_kind, tmp_path) -> None:
    figures = tmp_path / "figures"
    result = run_cli("eval-map", "--data", world_by_kind["walk"], "--json", "--figures", figures, "--no-progress",
                     check=True)
    report = json.loads(result.stdout)
    assert report["num_scenes"] == 2
    for block in ("model", "oracle_fusion"):
        assert len(report[block]["per_scene"]) == 2
        for key in (*CELL_METRICS, *OBJECT_METRICS):
            value = report[block][key]
            assert value is None or 0.0 <= value <= 1.0, (block, key, value)
        assert report[block]["confusion"]
        bins = report[block]["confidence_calibration"]["bins"]
        assert sum(b["objects"] for b in bins) == report[block]["objects_map"]
    assert report["model"]["seconds_per_scene"] > 0
    pictures = sorted(figures.glob("*.png"))
    assert [p.stem for p in pictures] == ["scene_00000", "scene_00001"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pictures)
    table = run_cli("eval-map", "--data", world_by_kind["walk"], "--max-scenes", "1", "--no-progress", check=True)
    assert "occupied_precision" in table.stdout and "1 scenes" in table.stdout


@pytest.mark.parametrize("empty", [False, True])
def test_a_missing_or_empty_data_folder_is_one_line(tmp_path, empty) -> None:
    data = tmp_path / "data"
    if empty:
        data.mkdir()
    result = run_cli("eval-map", "--data", data)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loc3r: error:") and str(data) in lines[0], result.stderr


def test_grid_overrides_reach_the_fusion_and_bad_ones_are_one_line(world_by_kind) -> None:
    blind = run_cli("eval-map", "--data", world_by_kind["walk"], "--max-scenes", "1", "--json", "--no-progress",
                    "--grid", "min_evidence=1e9", check=True)
    report = json.loads(blind.stdout)
    assert report["grid"]["min_evidence"] == 1e9
    for block in ("model", "oracle_fusion"):  # no cell holds that much evidence: nothing is mapped
        assert report[block]["free_coverage"] == 0.0 and report[block]["wall_recall"] == 0.0
    for bad, says in (("nonsense=1", "no grid field 'nonsense'"), ("fill_reach_cells=2.5", "whole number"),
                      ("free_weight=much", "takes a float"), ("box_noise_share=2", "box_noise_share"),
                      ("free_weight", "FIELD=VALUE")):
        result = run_cli("eval-map", "--data", world_by_kind["walk"], "--grid", bad)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and says in lines[0], (bad, result.stderr)


def test_the_memory_length_reaches_the_session_and_a_bad_one_is_one_line(world_by_kind) -> None:
    short = run_cli("eval-map", "--data", world_by_kind["walk"], "--max-scenes", "1", "--json", "--no-progress",
                    "--keyframes", "3", check=True)
    assert json.loads(short.stdout)["max_keyframes"] == 3
    result = run_cli("eval-map", "--data", world_by_kind["walk"], "--keyframes", "1")
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "--keyframes" in lines[0] and "[2, 256]" in lines[0], \
        result.stderr


def test_grid_config_overrides_keep_types_and_validate() -> None:
    config = GridConfig().overridden({"free_weight": 1, "fill_reach_cells": 5.0, "fill_objects": False})
    assert (config.free_weight, config.fill_reach_cells, config.fill_objects) == (1.0, 5, False)
    assert isinstance(config.free_weight, float) and isinstance(config.fill_reach_cells, int)
    assert GridConfig().overridden({}) == GridConfig()
    with pytest.raises(ValueError, match="takes a bool"):
        GridConfig().overridden({"fill_objects": 1})
    with pytest.raises(ValueError, match="takes a float"):
        GridConfig().overridden({"free_weight": True})
