"""SceneClipDataset: clips re-anchored to their first frame, pose priors, per-patch targets."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from loc3r_core.data.dataset import PackedClipDataset, SceneClipDataset
from loc3r_core.errors import DataError
from loc3r_core.geometry import anchor_frame, transform_planar
from loc3r_core.model.tokenizer import train_tokenizer
from loc3r_core.training.batch import collate_packed, model_inputs
from loc3r_core.world.scene_io import SceneFolder
from loc3r_core.world.situations import DIRECTIONS
from loc3r_core.world.vocabulary import LABELS, PATCH_CLASSES, STRUCTURE_CLASSES


@pytest.fixture(scope="module")
def walk(world_by_kind):
    return world_by_kind["walk"]


def test_items_cover_every_question_of_every_scene(walk):
    ds = SceneClipDataset(walk, num_frames=4)
    folders = [SceneFolder(p) for p in sorted(walk.glob("scene_*"))]
    assert len(ds) == sum(len(s.questions) for f in folders for s in f.situations) > 0
    item = ds[0]
    assert item["images"].shape == (4, 3, 96, 96) and item["images"].dtype == torch.float32
    assert float(item["images"].min()) >= 0.0 and float(item["images"].max()) <= 1.0
    assert item["bev_target"].shape == (4, 8, 8, 2) and item["patch_label"].shape == (4, 8, 8)
    assert item["question"] and item["answer"] and item["situation_text"]


def test_random_clips_are_reanchored_to_their_first_frame(walk):
    ds = SceneClipDataset(walk, num_frames=5, sampling="random", seed=3)
    index = next(i for i in range(len(ds)) if ds.frame_indices(i)[0] > 0)  # a clip not starting at frame 0
    item = ds[index]
    poses = item["T_world_camera"].numpy()
    assert abs(poses[0, 0, 3]) < 1e-6 and abs(poses[0, 1, 3]) < 1e-6
    assert abs(math.atan2(poses[0, 1, 2], poses[0, 0, 2])) < 1e-6
    np.testing.assert_allclose(item["prior_pose"][0].numpy(), np.eye(4), atol=1e-7)
    np.testing.assert_allclose(poses, poses[0] @ item["prior_pose"].numpy(), atol=1e-7)
    ego = item["ego_pose"].numpy()
    np.testing.assert_allclose(ego[:, :2], poses[:, :2, 3])
    np.testing.assert_allclose(ego[0], [0.0, 0.0, 0.0], atol=1e-6)
    # The relative poses do not depend on the anchor: same as from the stored world poses.
    folder = ds.scenes[ds.items[index][0]]
    stored = np.stack([folder.scene.frames[i].T_world_camera for i in item["frame_indices"].numpy()])
    np.testing.assert_allclose(item["prior_pose"].numpy(), np.linalg.inv(stored[0]) @ stored, atol=1e-7)
    ds.set_epoch(1)
    assert not np.array_equal(ds.frame_indices(index), item["frame_indices"].numpy())


def test_bev_targets_are_the_mean_backprojected_point_of_each_patch(walk):
    ds = SceneClipDataset(walk, num_frames=3, patch_grid=(6, 4), sampling="random", seed=1)
    item = ds[2]
    folder = ds.scenes[ds.items[2][0]]
    k = folder.scene.intrinsics
    T_clip_stored = item["T_world_camera"][1].numpy() @ np.linalg.inv(
        folder.scene.frames[int(item["frame_indices"][1])].T_world_camera)
    frame = int(item["frame_indices"][1])
    depth = folder.depth(frame)
    row, col = 4, 2  # patch (4, 2) of a 6 x 4 grid on 96 x 96 pixels: rows 64..79, cols 48..71
    vs, us = np.mgrid[64:80, 48:72]
    d = depth[vs, us]
    cam = np.stack([(us + 0.5 - k.cx) / k.fx * d, (vs + 0.5 - k.cy) / k.fy * d, d], axis=-1).reshape(-1, 3)
    stored_pose = folder.scene.frames[frame].T_world_camera
    stored_world = cam @ stored_pose[:3, :3].T + stored_pose[:3, 3]
    clip_world = stored_world @ T_clip_stored[:3, :3].T + T_clip_stored[:3, 3]
    np.testing.assert_allclose(item["bev_target"][1, row, col].numpy(), clip_world[:, :2].mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(item["patch_points"][1, row, col].numpy(), clip_world.mean(axis=0), atol=1e-9)
    assert bool(item["bev_valid"].all())


def test_patch_labels_name_what_the_patch_shows(walk):
    ds = SceneClipDataset(walk, num_frames=6, patch_grid=(8, 8))
    checked = 0
    for index in range(0, len(ds), 7):
        item = ds[index]
        folder = ds.scenes[ds.items[index][0]]
        labels = {o.id: o.label for o in folder.scene.objects}
        for k, frame in enumerate(item["frame_indices"].numpy()):
            instance = folder.instance(int(frame)).reshape(8, 12, 8, 12).transpose(0, 2, 1, 3).reshape(8, 8, -1)
            for r in range(8):
                for c in range(8):
                    ids = np.unique(instance[r, c])
                    if len(ids) == 1 and ids[0] > 0:  # a patch wholly on one object
                        expected = len(STRUCTURE_CLASSES) + LABELS.index(labels[int(ids[0])])
                        assert int(item["patch_label"][k, r, c]) == expected
                        checked += 1
                    elif len(ids) == 1:
                        z = item["patch_points"][k, r, c, 2]  # a patch of structure: which part?
                        expected = "floor" if z < 0.02 else "ceiling" if z > folder.scene.room.height - 0.02 else None
                        label = PATCH_CLASSES[int(item["patch_label"][k, r, c])]
                        assert label == expected if expected else label in STRUCTURE_CLASSES
                        checked += expected is not None
    assert checked > 40
    all_labels = torch.cat([ds[i]["patch_label"].flatten() for i in range(0, len(ds), 5)])
    assert {0, 1, 2}.issubset(set(all_labels.tolist())), "floor, walls and ceiling appear"


def test_pseudo_situations_replace_only_situation_free_questions(walk):
    always = SceneClipDataset(walk, num_frames=2, pseudo_situation_share=1.0)
    never = SceneClipDataset(walk, num_frames=2)
    replaced = 0
    for index in range(len(always)):
        folder = always.scenes[always.items[index][0]]
        question = folder.situations[always.items[index][1]].questions[always.items[index][2]]
        item = always[index]
        if question.situated:
            assert item["has_situation"] and item["situation_text"] == folder.situations[always.items[index][1]].text
        else:
            assert not item["has_situation"] and item["situation_text"] == "I am standing in the room."
            assert question.question.endswith("in the room?")
            replaced += 1
        if index % 9 == 0:
            assert never[index]["has_situation"]
    assert replaced > 0
    with pytest.raises(ValueError, match="pseudo_situation_share"):
        SceneClipDataset(walk, pseudo_situation_share=1.5)


def test_situations_keep_their_meaning_in_the_clip_frame(walk):
    ds = SceneClipDataset(walk, num_frames=4, sampling="random", seed=5)
    for index in range(0, len(ds), 3):
        item = ds[index]
        folder = ds.scenes[ds.items[index][0]]
        situation = folder.situations[ds.items[index][1]]
        facing = next((r["object_id"] for r in situation.relations if r["relation"] == "facing"), None)
        if facing is None:
            continue
        T = item["T_world_camera"][0].numpy() @ np.linalg.inv(
            folder.scene.frames[int(item["frame_indices"][0])].T_world_camera)
        target = (T @ np.append(folder.scene.object(facing).center, 1.0))[:2]
        p, yaw = item["situation_position"].numpy(), float(item["situation_yaw"])
        off = math.atan2(target[1] - p[1], target[0] - p[0]) - yaw
        assert abs((off + math.pi) % (2 * math.pi) - math.pi) < math.radians(20)


def test_the_asked_object_is_placed_in_the_askers_own_frame(walk):
    """Direction answers follow from answer_xy: ahead is +x, left is +y (world.situations.DIRECTIONS)."""
    ds = SceneClipDataset(walk, num_frames=4)
    checked = 0
    for index in range(len(ds)):
        item = ds[index]
        if not bool(item["answer_xy_valid"]):
            assert item["question_type"] not in ("direction", "distance") or not item["has_situation"]
            continue
        if item["question_type"] == "direction":
            ahead, left = item["answer_xy"].tolist()
            bearing = math.degrees(math.atan2(left, ahead))
            expected = DIRECTIONS[int(((bearing + 45.0) % 360.0) // 90.0)]
            assert item["answer"] == expected, (item["question"], bearing)
            checked += 1
    assert checked >= 5


def test_batches_collate_and_images_resize(walk):
    ds = SceneClipDataset(walk, num_frames=4, image_size=64, patch_grid=(4, 4))
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["images"].shape == (3, 4, 3, 64, 64)
    assert batch["bev_target"].shape == (3, 4, 4, 4, 2) and len(batch["question"]) == 3


def test_clips_without_images_batch_for_a_feature_cache_and_only_for_it(walk):
    # Training from a tower feature cache reads no image; the batch keeps what the cache looks up.
    tokenizer = train_tokenizer(["I am standing next to the bed.", "How far is the door?", "1.5 m"] * 20, 300)
    with_images = PackedClipDataset(walk, 3, num_frames=4, image_size=64, patch_grid=(4, 4))
    without = PackedClipDataset(walk, 3, num_frames=4, image_size=64, patch_grid=(4, 4), load_images=False)
    assert "images" in with_images[0] and "images" not in without[0]
    a, b = (collate_packed([ds[0], ds[1]], tokenizer, 16) for ds in (with_images, without))
    assert "images" not in b and torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["row_ids"], b["row_ids"])
    assert torch.equal(a["frame_indices"], b["frame_indices"]) and torch.equal(a["scene_index"], b["scene_index"])
    with pytest.raises(ValueError, match="needs the tower feature cache"):
        model_inputs(b)


def test_a_folder_without_scenes_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no complete scene folders"):
        SceneClipDataset(tmp_path)
    with pytest.raises(ValueError, match="sampling"):
        SceneClipDataset(tmp_path, sampling="every-other")


def test_several_folders_read_as_one_training_set_and_an_empty_one_is_named(world_by_kind, tmp_path):
    walk, complex_ = world_by_kind["walk"], world_by_kind["complex"]
    both = SceneClipDataset([walk, complex_], num_frames=4)
    assert [f.path for f in both.scenes] == sorted(walk.glob("scene_*")) + sorted(complex_.glob("scene_*"))
    assert len(both) == len(SceneClipDataset(walk, num_frames=4)) + len(SceneClipDataset(complex_, num_frames=4))
    with pytest.raises(DataError, match=f"{re.escape(str(tmp_path))} holds no complete scene folders"):
        SceneClipDataset([walk, tmp_path])
    with pytest.raises(DataError, match="listed twice"):
        SceneClipDataset([walk, complex_, walk])


def test_packed_clips_ask_every_question_once_an_epoch_in_new_company(walk):
    plain = SceneClipDataset(walk, num_frames=4)
    packed = PackedClipDataset(walk, 5, num_frames=4)
    by_scene: dict[int, list] = {}
    for scene_index, situation_index, question_index in plain.items:
        by_scene.setdefault(scene_index, []).append((situation_index, question_index))
    chunks = []
    for epoch in (0, 1):
        packed.set_epoch(epoch)
        asked: dict[int, list] = {}
        for index, (scene_index, _) in enumerate(packed.items):
            rows = packed.rows(index)
            assert 1 <= len(rows) <= 5
            asked.setdefault(scene_index, []).extend(rows)
        assert {k: sorted(v) for k, v in asked.items()} == {k: sorted(v) for k, v in by_scene.items()}
        chunks.append([packed.rows(i) for i in range(len(packed))])
    assert chunks[0] != chunks[1]  # reshuffled every epoch

    item = packed[0]
    scene_index = packed.items[0][0]
    assert len(item["rows"]) == len(packed.rows(0))
    for row, (situation_index, question_index) in zip(item["rows"], packed.rows(0), strict=True):
        question = plain.scenes[scene_index].situations[situation_index].questions[question_index]
        assert row["question"] == question.question and row["answer"] == question.answer
        # every row is placed in the clip's own frame, as a plain item of that clip would be
        position = np.asarray(plain.scenes[scene_index].situations[situation_index].position)
        first = plain.scenes[scene_index].scene.frames[int(item["frame_indices"][0])].T_world_camera
        expected, _ = transform_planar(anchor_frame(first), position, 0.0)
        assert np.allclose(row["situation_position"].numpy(), expected)
    with pytest.raises(ValueError, match="questions_per_clip"):
        PackedClipDataset(walk, 0)
