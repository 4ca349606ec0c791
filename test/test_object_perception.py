"""Object-level perception: objects_first patch targets and the object metrics of `loc3r eval`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.data.targets import PRESENT_SHARE, patch_targets, subdivide
from loc3r_core.evaluation.objects import ObjectAccumulator, semantic_pointer
from loc3r_core.model.spatial import balanced_class_weights, focal_cross_entropy
from loc3r_core.world.vocabulary import PATCH_CLASSES, STRUCTURE_CLASSES


@pytest.fixture(scope="module")
def walk(world_by_kind):
    return world_by_kind["walk"]


def test_objects_first_marks_a_small_object_that_the_majority_label_misses(walk):
    majority = SceneClipDataset(walk, num_frames=8, patch_grid=(4, 4))
    ds = SceneClipDataset(walk, num_frames=8, patch_grid=(4, 4), patch_target="objects_first")
    found = 0
    for scene_index, folder in enumerate(ds.scenes):
        scene = folder.scene
        for frame in range(0, len(scene.frames), 4):
            args = (folder.depth(frame), folder.instance(frame), scene.intrinsics, scene.frames[frame].T_world_camera,
                    scene, (4, 4))
            old, new = patch_targets(*args, "majority"), patch_targets(*args, "objects_first")
            side = folder.instance(frame).shape[0] // 4
            blocks = folder.instance(frame).reshape(4, side, 4, side).transpose(0, 2, 1, 3).reshape(4, 4, -1)
            points = majority.frame_targets(scene_index, frame)["points"]
            np.testing.assert_allclose(old["points"], points)
            for r, c in zip(*np.nonzero(new["label"] != old["label"]), strict=True):
                assert new["label"][r, c] >= len(STRUCTURE_CLASSES) > old["label"][r, c]  # an object won
                ids, counts = np.unique(blocks[r, c][blocks[r, c] > 0], return_counts=True)
                biggest = scene.object(int(ids[counts.argmax()]))
                assert PATCH_CLASSES[new["label"][r, c]] == biggest.label
                assert counts.max() >= PRESENT_SHARE * side * side and counts.max() < 0.5 * side * side
                # its point is the object's own pixels, inside (or at the edge of) its box on the floor
                local = np.abs(new["points"][r, c, :2] - biggest.center[:2])
                assert np.all(local <= np.linalg.norm(biggest.size[:2]) / 2 + 0.05)
                found += 1
    assert found > 5, "some objects only objects_first targets mark"
    with pytest.raises(ValueError, match="patch_target"):
        SceneClipDataset(walk, patch_target="biggest")


def test_a_lower_token_presence_share_marks_more_objects_in_the_tokens_and_leaves_the_map_targets(walk):
    def targets(share):
        ds = SceneClipDataset(walk, num_frames=8, patch_grid=(4, 4), patch_target="objects_first",
                              token_present_share=share, map_subdivision=2)
        return [ds.frame_targets(s, f) for s in range(len(ds.scenes))
                for f in range(0, len(ds.scenes[s].scene.frames), 4)]

    default, lower = targets(PRESENT_SHARE), targets(0.02)
    gained = 0
    for old, new in zip(default, lower, strict=True):
        changed = new["label"] != old["label"]
        # only structure tokens change, each to an object class present in under PRESENT_SHARE of it
        assert (old["label"][changed] < len(STRUCTURE_CLASSES)).all()
        assert (new["label"][changed] >= len(STRUCTURE_CLASSES)).all()
        gained += int(changed.sum())
        for key in ("map_label", "map_points", "map_valid"):  # the map head's sub-patches keep theirs
            np.testing.assert_array_equal(new[key], old[key])
    assert gained > 3, "small object shares become token labels"
    with pytest.raises(ValueError, match="token_present_share"):
        SceneClipDataset(walk, token_present_share=0.0)


def test_centre_targets_put_object_patches_at_their_objects_centre_and_the_rest_on_their_points(walk):
    ds = SceneClipDataset(walk, num_frames=8, patch_grid=(4, 4), patch_target="objects_first")
    item = ds[0]
    labels, valid = item["patch_label"].numpy(), item["bev_valid"].numpy()
    centres, points = item["centre_target"].numpy(), item["bev_target"].numpy()
    structure = valid & (labels < len(STRUCTURE_CLASSES))
    np.testing.assert_allclose(centres[structure], points[structure])
    objects = valid & (labels >= len(STRUCTURE_CLASSES))
    assert objects.sum() > 3
    clip_centres = {o["class"]: [] for o in item["objects"]}
    for o in item["objects"]:
        clip_centres[o["class"]].append(o["center"])
    for centre, label in zip(centres[objects], labels[objects], strict=True):
        # the centre of an object of the patch's class, wherever on the object the patch lies
        assert min(np.linalg.norm(centre - c) for c in clip_centres[int(label)]) < 1e-6


def test_sub_patch_targets_are_each_tokens_cells_of_the_finer_grid(walk):
    fine = np.arange(8 * 12 * 2).reshape(8, 12, 2)  # a 4 x 6 token grid, each token 2 x 2 cells
    tokens = subdivide(fine, (4, 6), 2)
    assert tokens.shape == (24, 4, 2)
    for r, c, i, j in np.ndindex(4, 6, 2, 2):
        np.testing.assert_array_equal(tokens[r * 6 + c, i * 2 + j], fine[r * 2 + i, c * 2 + j])
    item = SceneClipDataset(walk, num_frames=4, patch_grid=(4, 4), patch_target="majority", map_subdivision=4)[0]
    assert item["map_target"].shape == (4, 16, 16, 2) and item["map_label"].shape == (4, 16, 16)
    # a token's point is the mean of its pixels' points, so of its sub-patches' points (weighted by
    # their pixels with depth; the walk's rooms leave none without): the same place, 16 points
    sub, valid = item["map_target"].numpy(), item["map_valid"].numpy()
    whole = item["bev_target"].numpy().reshape(4, 16, 2)
    full = valid.all(axis=2)
    assert full.mean() > 0.9
    np.testing.assert_allclose(sub[full].mean(axis=1), whole[full], atol=1e-4)


def _true_clip(ds: SceneClipDataset, index: int) -> tuple[dict, np.ndarray, np.ndarray]:
    item = ds[index]
    labels = np.where(item["bev_valid"].numpy(), item["patch_label"].numpy(), -1)
    return item, item["bev_target"].numpy().reshape(8, -1, 2), labels.reshape(8, -1)


def test_object_recall_is_full_for_true_points_and_labels_and_drops_when_they_move(walk):
    # 2x2-pixel patches: every seen object's pixels win patches of their own, so the truth finds them all
    ds = SceneClipDataset(walk, num_frames=8, patch_grid=(48, 48), patch_target="objects_first")
    truth, shifted = ObjectAccumulator(), ObjectAccumulator()
    for scene_index in range(len(ds.scenes)):
        index = next(i for i, item in enumerate(ds.items) if item[0] == scene_index)
        item, points, labels = _true_clip(ds, index)
        extra = (points, labels, item["objects"], item["seen_object_ids"], points, labels >= 0, labels)
        truth.add_clip(*extra)
        shifted.add_clip(points + np.array([1.0, 0.0]), *extra[1:])
    good, bad = truth.summary(), shifted.summary()
    assert good["num_seen_objects"] >= 5
    assert good["object_recall"] == 100.0 and good["object_point_precision"] == 100.0
    assert good["object_bev_median_error_m"] == 0.0
    assert bad["object_recall"] < good["object_recall"] - 25
    assert bad["object_point_precision"] < good["object_point_precision"] - 25
    assert bad["object_bev_median_error_m"] == pytest.approx(1.0)


def test_unseen_objects_do_not_count_and_wrong_labels_miss():
    lamp, bed = PATCH_CLASSES.index("lamp"), PATCH_CLASSES.index("bed")
    objects = [{"id": 1, "class": lamp, "center": np.array([1.0, 0.0]), "size": np.array([0.3, 0.3]), "yaw": 0.0},
               {"id": 2, "class": bed, "center": np.array([-2.0, 0.0]), "size": np.array([2.0, 1.5]), "yaw": 0.3}]
    points = np.array([[[1.1, 0.1], [-2.0, 0.2], [0.0, 3.0]]])
    accumulator = ObjectAccumulator()
    accumulator.add_clip(points, np.array([[bed, bed, 0]]), objects, [1], points, np.ones((1, 3), bool),
                         np.zeros((1, 3), int))
    summary = accumulator.summary()
    assert summary["object_recall_by_class"] == {"lamp": 0.0}  # the bed was not seen; the lamp's token says bed
    assert summary["object_point_precision"] == 50.0  # one bed token on the bed, one on the lamp


def test_precision_by_range_sorts_object_tokens_by_their_distance_from_their_own_camera():
    lamp, bed = PATCH_CLASSES.index("lamp"), PATCH_CLASSES.index("bed")
    objects = [{"id": 1, "class": lamp, "center": np.array([1.0, 0.0]), "size": np.array([0.3, 0.3]), "yaw": 0.0},
               {"id": 2, "class": bed, "center": np.array([6.0, 0.0]), "size": np.array([2.0, 1.5]), "yaw": 0.0}]
    # frame 0's camera at the origin: a lamp token on the lamp (1 m), a bed token 1 m short of the bed (4 m);
    # frame 1's camera at (4, 0): a bed token on the bed (2 m from it), a floor token that does not count
    points = np.array([[[1.0, 0.0], [4.0, 0.0]], [[6.0, 0.0], [3.0, 3.0]]])
    labels = np.array([[lamp, bed], [bed, 0]])
    accumulator = ObjectAccumulator()
    accumulator.add_clip(points, labels, objects, [1, 2], points, np.ones((2, 2), bool), labels,
                         cameras=np.array([[0.0, 0.0], [4.0, 0.0]]))
    by_range = accumulator.summary()["object_point_precision_by_range"]
    assert by_range["0-2 m"] == {"precision": 100.0, "share": 33.33}
    assert by_range["2-3 m"] == {"precision": 100.0, "share": 33.33}  # the bed token on the bed, seen from 2 m
    assert by_range["4-5 m"] == {"precision": 0.0, "share": 33.33}  # 1 m short of the bed's footprint (0.5 m)
    assert by_range["3-4 m"] == {"precision": None, "share": 0.0} and by_range["5+ m"]["precision"] is None
    without = ObjectAccumulator()
    without.add_clip(points, labels, objects, [1, 2], points, np.ones((2, 2), bool), labels)
    assert "object_point_precision_by_range" not in without.summary()


def test_semantic_pointer_stands_at_the_named_class_and_faces_the_other():
    lamp, tv, floor = PATCH_CLASSES.index("lamp"), PATCH_CLASSES.index("tv"), 0
    points = np.array([[[2.0, 1.0], [2.2, 1.0], [2.0, 4.0], [0.0, 0.0]]])
    labels = np.array([[lamp, lamp, tv, floor]])
    path = np.array([[0.0, 0.0], [1.0, 0.0]])
    position, yaw, found = semantic_pointer(points, labels, (lamp, tv), path, np.zeros(2))
    np.testing.assert_allclose(position, [2.1, 1.0])
    assert found and yaw == pytest.approx(math.atan2(3.0, -0.1))
    _, yaw, _ = semantic_pointer(points, labels, (lamp, lamp), path, np.zeros(2))  # "in front of the lamp, facing it"
    assert yaw == pytest.approx(math.atan2(1.0, 1.6))  # seen from the middle of the path
    position, yaw, found = semantic_pointer(points, labels, (PATCH_CLASSES.index("bed"), lamp), path,
                                            np.array([0.2, 0.4]))
    assert not found and np.allclose(position, [0.5, 0.0])  # no bed token: the path centre
    assert yaw == pytest.approx(math.atan2(1.0, 1.6))


def test_focal_loss_is_cross_entropy_at_gamma_zero_and_favours_hard_items():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.5, 0.0], [1.0, 1.0, 1.0]])
    labels = torch.tensor([0, 0, -1])
    ce = torch.nn.functional.cross_entropy(logits[:2], labels[:2])
    assert float(focal_cross_entropy(logits, labels)) == pytest.approx(float(ce))
    easy, hard = (float(focal_cross_entropy(logits[i:i + 1], labels[i:i + 1], gamma=2.0)) for i in (0, 1))
    easy_ce, hard_ce = (float(focal_cross_entropy(logits[i:i + 1], labels[i:i + 1])) for i in (0, 1))
    assert easy / easy_ce < 0.01 < 0.3 < hard / hard_ce
    assert float(focal_cross_entropy(logits[2:], labels[2:], gamma=2.0)) == 0.0


def test_class_weights_are_torchs_weighted_cross_entropy_and_balance_rare_classes():
    counts = np.array([900, 90, 10, 0])
    weights = balanced_class_weights(counts, 0.5)
    assert float((weights[:3].double() * torch.tensor(counts[:3])).sum()) == pytest.approx(counts.sum())  # mean 1
    assert float(weights[2] / weights[0]) == pytest.approx(math.sqrt(90))  # (900 / 10)^0.5
    assert float(weights[3]) == pytest.approx(float(weights[2]))  # unseen: the rarest seen class's
    assert torch.equal(balanced_class_weights(counts, 0.0)[:3], torch.ones(3))
    logits, labels = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 0, 0, 1, 2, -1])
    expected = torch.nn.functional.cross_entropy(logits[:5], labels[:5], weight=weights)
    assert float(focal_cross_entropy(logits, labels, class_weights=weights)) == pytest.approx(float(expected), rel=1e-6)


def test_mirrored_frames_flip_image_patch_columns_and_camera_x_together():
    from loc3r_core.training.vision_pretrain import mirrored

    side = 4
    images = torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8)
    batch = {"images": images, "labels": torch.arange(32).view(2, 16), "points": torch.randn(2, 16, 3),
             "valid": torch.rand(2, 16) > 0.3}
    out = mirrored(batch, torch.tensor([True, False]), side)
    assert torch.equal(out["images"][0], images[0].flip(1)) and torch.equal(out["images"][1], images[1])
    grid = lambda x: x.view(2, side, side, *x.shape[2:])  # noqa: E731
    assert torch.equal(grid(out["labels"])[0], grid(batch["labels"])[0].flip(1))
    assert torch.equal(grid(out["valid"])[0], grid(batch["valid"])[0].flip(1))
    left, right = grid(out["points"])[0, 1, 0], grid(batch["points"])[0, 1, side - 1]
    assert torch.allclose(left, right * torch.tensor([-1.0, 1.0, 1.0]))
    for key in ("labels", "points", "valid"):
        assert torch.equal(out[key][1], batch[key][1])
    fronts = torch.arange(64.0).view(2, 16, 2)  # patch p of frame f: (32 f + 2 p, 32 f + 2 p + 1)
    with_fronts = mirrored({**batch, "fronts": fronts}, torch.tensor([True, False]), side)
    assert torch.equal(with_fronts["points"], out["points"])
    front = grid(with_fronts["fronts"])
    assert front[0, 2, 0].tolist() == [-22.0, 23.0]  # row 2, column 0 <- column 3 (patch 11), x negated
    assert front[1, 2, 0].tolist() == [48.0, 49.0]  # frame 1 untouched (patch 8)


def test_sub_patch_targets_are_ordered_as_the_sub_patch_head_writes_them_and_scored_at_the_end(walk):
    """Stage 1's optional sub-patch head (subpatch_weight): its finer-grid targets are reordered token
    by token exactly as data.targets.subdivide orders the map head's, and its recall is reported."""
    from transformers import SiglipVisionConfig

    from loc3r_core.data.frames import load_frames
    from loc3r_core.training.vision_pretrain import PatchPretrainer, patch_metrics, token_major

    side, s = 4, 2
    fine = np.arange(3 * (side * s) ** 2).reshape(3, (side * s) ** 2)
    expected = np.stack([subdivide(f.reshape(side * s, side * s), (side, side), s).reshape(-1) for f in fine])
    assert np.array_equal(token_major(torch.from_numpy(fine), side, s).numpy(), expected)
    points = torch.randn(3, (side * s) ** 2, 3)
    assert torch.equal(token_major(points, side, s)[1].view(side * side, s * s, 3)[5, 3],
                       points[1].view(side * s, side * s, 3)[1 * s + 1, 1 * s + 1])  # token (1, 1), sub (1, 1)

    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=64, patch_size=16)
    model = PatchPretrainer(vision, subdivision=s)
    frames = load_frames(walk, 64, (side, side), "objects_first", max_scenes=1, progress=False)
    sub_frames = load_frames(walk, 64, (side * s, side * s), "objects_first", max_scenes=1, progress=False)
    logits, _, (sub_logits, sub_points), fronts = model(torch.from_numpy(frames.images[:2]))
    assert fronts is None  # no front head unless asked
    assert sub_logits.shape == (2, side * side * s * s, len(PATCH_CLASSES)) and sub_points.shape[-1] == 3
    assert logits.shape == (2, side * side, len(PATCH_CLASSES))
    metrics = patch_metrics(model, frames, sub_frames)
    assert 0 <= metrics["subpatch_object_recall"] <= 100 and metrics["subpatch_object_recall_by_class"]
    assert "subpatch_object_recall" not in patch_metrics(PatchPretrainer(vision), frames)


def test_camera_fronts_turn_world_fronts_into_the_cameras_floor_plane():
    from loc3r_core.data.frames import camera_fronts
    from loc3r_core.geometry import camera_rotation, make_pose

    # a camera looking along +y, tilted down: an object facing -y faces the camera (z -1), one facing
    # +x faces to the camera's right (OpenCV's x, which is world +x here)
    pose = make_pose(camera_rotation(math.pi / 2, -0.3), np.array([1.0, 2.0, 1.2]))
    fronts = np.array([[0.0, -1.0], [1.0, 0.0], [np.nan, np.nan]])
    np.testing.assert_allclose(camera_fronts(fronts, pose), [[0.0, -1.0], [1.0, 0.0], [0.0, 0.0]], atol=1e-6)


def test_stage_one_learns_fronts_where_asked_and_scores_them(walk):
    """front_weight: the frames carry each fronted object's front in the camera's floor plane (a
    unit vector where the patch shows one, else 0), and a front head learns them on one batch."""
    from transformers import SiglipVisionConfig

    from loc3r_core.data.frames import load_frames
    from loc3r_core.model.modeling_loc3r import front_loss
    from loc3r_core.training.vision_pretrain import PatchPretrainer, front_error_deg, patch_metrics

    frames = load_frames(walk, 64, (4, 4), "objects_first", max_scenes=2, progress=False)
    length = np.linalg.norm(frames.fronts, axis=-1)
    has = length > 0.5
    assert has.sum() > 20 and np.allclose(length[has], 1.0, atol=1e-5) and (length[~has] == 0).all()
    assert (frames.labels[has] >= len(STRUCTURE_CLASSES)).all(), "only object patches have a front"
    np.testing.assert_allclose(front_error_deg(np.array([[1.0, 1.0], [2.0, 0.0]]), np.array([[1.0, 0.0], [0, 0]])),
                               [45.0])

    torch.manual_seed(0)
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=64, patch_size=16)
    model = PatchPretrainer(vision, fronts=True)
    pick = np.flatnonzero(has.any(axis=1))[:16]
    images, target = torch.from_numpy(frames.images[pick]), torch.from_numpy(frames.fronts[pick])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = front_loss(model(images)[3], target, target.norm(dim=-1) > 0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0], losses
    metrics = patch_metrics(model, frames)
    assert 0 <= metrics["front_within_30deg"] <= 100 and metrics["front_median_error_deg"] >= 0
    assert "front_within_30deg" not in patch_metrics(PatchPretrainer(vision), frames)
