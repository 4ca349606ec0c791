"""`loc3r eval-runtime`: the runtime scored as it runs, and the memory eviction it runs with."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from loc3r_core.runtime.keyframes import EVICTIONS, KeyframePolicy, evicted
from loc3r_core.runtime.onnx_backend import OnnxBackend
from loc3r_core.runtime.scenario import scene_frames
from loc3r_core.runtime.session import Session, SessionConfig
from loc3r_core.world.scene_io import SceneFolder

POLICY = KeyframePolicy()


def test_each_eviction_rule_drops_what_it_says():
    stamps = np.arange(8) * 10**9
    poses = np.array([[x, 0.0, 0.0] for x in (0.0, 0.4, 0.8, 0.85, 1.6, 2.0, 2.4, 2.8)])
    assert evicted(poses, stamps, 2, POLICY, "oldest") == [0, 1]
    assert evicted(poses, stamps, 1, POLICY, "pose") == [2]  # the older of the two views 5 cm apart
    uneven = np.array([0, 5, 6, 7, 10, 20, 30, 40]) * 10**9  # dense after 5 s: thinned there first
    assert evicted(poses, uneven, 2, POLICY, "time") == [2, 3]
    for rule in EVICTIONS:
        assert 7 not in evicted(poses, stamps, 7, POLICY, rule) and len(evicted(poses, stamps, 7, POLICY, rule)) == 7
    with pytest.raises(ValueError, match="eviction"):
        evicted(poses, stamps, 1, POLICY, "newest")
    with pytest.raises(ValueError, match="eviction"):
        SessionConfig(eviction="newest").validate()


def test_a_full_memory_keeps_a_spread_over_the_walk_with_time_eviction(world_by_kind):
    folder = SceneFolder(sorted(world_by_kind["loop"].glob("scene_*"))[0])
    backend = OnnxBackend()
    spans = {}
    for rule in ("oldest", "time"):
        session = Session(backend, SessionConfig(max_keyframes=4, eviction=rule))
        first = None
        for frame in scene_frames(folder):
            first = frame.stamp_ns if first is None else first
            session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry)
        assert session.memory_rebuilds > 0 and len(session.memory) <= 4
        spans[rule] = session.memory[-1].stamp_ns - session.memory[0].stamp_ns
    assert spans["time"] > 2 * spans["oldest"]


def test_eval_runtime_scores_placements_and_answers_of_the_streamed_runtime(world_by_kind):
    walk = world_by_kind["walk"]
    metrics = json.loads(run_cli("eval-runtime", "--data", walk, "--json", "--no-progress", check=True).stdout)
    situations = sum(len(SceneFolder(p).situations) for p in sorted(walk.glob("scene_*")))
    assert metrics["num_situations"] == situations and metrics["num_scenes"] == len(list(walk.glob("scene_*")))
    assert metrics["eviction"] == "time" and metrics["map_answer_types"] == ["count", "what_direction"]
    assert metrics["map_tiebreak_types"] == ["distance"]
    assert 0 < metrics["map_answered_share"] < 100 and metrics["keyframes_per_scene"] > 4
    # floors far under the README's figures, far above the path-centre reference (loc@1m about 13)
    assert metrics["loc_acc_1_0m"] > 45 and metrics["qa_em"] > 45
    decoder = json.loads(run_cli("eval-runtime", "--data", walk, "--max-scenes", "1", "--eviction", "oldest",
                                 "--map-answers", "none", "--map-tiebreaks", "none", "--json", "--no-progress",
                                 check=True).stdout)
    assert decoder["eviction"] == "oldest" and decoder["map_answered_share"] == 0 and decoder["num_scenes"] == 1
    assert decoder["map_answer_types"] == decoder["map_tiebreak_types"] == []
    visual = json.loads(run_cli("eval-runtime", "--data", walk, "--max-scenes", "1", "--prior", "visual", "--json",
                                "--no-progress", check=True).stdout)
    assert visual["prior"] == "visual" and metrics["prior"] == "odometry" and visual["num_scenes"] == 1
    # on a map built with the camera's odometry only "what is on my left?" and the like come from the map
    assert 0 < visual["map_answered_share"] < metrics["map_answered_share"]
    bad = run_cli("eval-runtime", "--data", walk, "--motion", walk)
    assert bad.returncode == 2 and "--motion is read only with --prior visual" in bad.stderr
    bad = run_cli("eval-runtime", "--data", walk, "--map-answers", "colour")
    assert bad.returncode == 2 and bad.stderr.strip().endswith("or none, not 'colour'")
    bad = run_cli("eval-runtime", "--data", walk, "--map-tiebreaks", "colour")
    assert bad.returncode == 2 and "--map-tiebreaks takes question types" in bad.stderr
