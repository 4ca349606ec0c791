"""The streaming runtime: session semantics, both backends, export parity, the torch-free path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import psutil
import pytest
from matplotlib.path import Path as PolygonPath

from conftest import ROOT, run_cli
from loc3r_core.errors import DataError, Loc3rError
from loc3r_core.export.parity import check_parity
from loc3r_core.model.folder import SHIPPED_MODEL
from loc3r_core.runtime.backend import graph_names
from loc3r_core.runtime.onnx_backend import SHIPPED_EXPORT, OnnxBackend
from loc3r_core.runtime.scenario import scene_frames
from loc3r_core.runtime.session import QuestionError, Session, SessionConfig
from loc3r_core.runtime.spec import ModelSpec
from loc3r_core.runtime.torch_backend import TorchBackend
from loc3r_core.runtime.visual_odometry import open_visual_odometry
from loc3r_core.types import UNKNOWN
from loc3r_core.world.scene_io import SceneFolder


class CountingBackend:
    """A real backend whose image encodings are counted (everything else passes through)."""

    def __init__(self, backend: OnnxBackend) -> None:
        self.inner, self.encoded = backend, 0
        self.name, self.spec, self.text = backend.name, backend.spec, backend.text

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        self.encoded += len(images)
        return self.inner.encode_images(images)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def onnx_backend() -> OnnxBackend:
    return OnnxBackend()


@pytest.fixture(scope="module")
def scene(world_by_kind) -> SceneFolder:
    return SceneFolder(sorted(world_by_kind["loop"].glob("scene_*"))[0])


def stream_scene(session: Session, folder: SceneFolder, odometry: bool = True) -> None:
    for frame in scene_frames(folder, odometry):
        session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry)


def test_frames_without_odometry_take_the_visual_odometrys_poses_and_never_relate_two_odometry_frames(
        onnx_backend, scene):
    session = Session(onnx_backend, SessionConfig(max_keyframes=4), open_visual_odometry())
    frames = list(scene_frames(scene))

    def push(frame, odometry: bool) -> str:
        return session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry if odometry else None,
                            force_keyframe=True).prior

    assert [push(f, False) for f in frames[:6]] == ["visual"] * 6
    twin = open_visual_odometry()  # the same network on the same frames: the poses the keyframes hold
    expected = {f.stamp_ns: twin.update(f.rgb, f.intrinsics) for f in frames[:6]}
    assert session.memory_rebuilds >= 1  # ... also once the memory is re-anchored
    for keyframe in session.memory:
        np.testing.assert_allclose(keyframe.odometry, expected[keyframe.stamp_ns], atol=1e-9)
    # the robot's odometry is another frame, and the visual odometry after it a new chain: no prior across them
    assert push(frames[6], True) == "none" and push(frames[7], False) == "none"
    assert session.keyframes_with_odometry == 1 and session.visual_chains == 1
    session.reset()
    assert push(frames[0], False) == push(frames[1], False) == "visual"
    plain = Session(onnx_backend)  # no visual odometry: a prior only from the robot
    assert plain.push(frames[0].rgb, frames[0].stamp_ns, frames[0].intrinsics).prior == "none"
    plain.reset()
    assert plain.push(frames[0].rgb, frames[0].stamp_ns, frames[0].intrinsics, frames[0].odometry).prior == "wheel"


def test_each_frame_is_encoded_once_even_when_the_memory_is_rebuilt(onnx_backend, scene):
    backend = CountingBackend(onnx_backend)
    session = Session(backend, SessionConfig(max_keyframes=4))
    frames = list(scene_frames(scene)) * 3
    keyframes = sum(session.push(f.rgb, f.stamp_ns, f.intrinsics, f.odometry, force_keyframe=True).keyframe
                    for f in frames)
    assert keyframes == len(frames)
    assert session.memory_rebuilds >= 5  # memory of 4 keyframes, rebuilt many times from cached tokens
    assert backend.encoded == len(frames)  # ...and never an image encoded twice
    assert len(session.memory) <= 4
    assert session.memory_tokens() == len(session.memory) * session.tokens_per_frame


def test_memory_stays_flat_over_2000_frames(onnx_backend, scene):
    """Every store the session keeps is bounded: after the first 500 frames fill them, 1500 more frames
    (21 ms each here) add nothing. Measured flat to 0.1 MB; the bound allows 6.7 kB a frame."""
    session = Session(onnx_backend, SessionConfig(max_keyframes=8, max_trajectory=500))
    frames = list(scene_frames(scene))
    process = psutil.Process()
    rss = {}
    for i in range(2000):
        frame = frames[i % len(frames)]
        session.push(frame.rgb, i * 50_000_000, frame.intrinsics, frame.odometry)  # 20 Hz
        if i + 1 in (500, 2000):
            rss[i + 1] = process.memory_info().rss
    assert len(session.memory) <= 8
    assert session.memory_tokens() <= 8 * session.tokens_per_frame
    assert len(session.trajectory) == 500
    assert session.frames_seen == 2000 and session.images_encoded == 2000
    assert rss[2000] - rss[500] < 10e6, f"grew {(rss[2000] - rss[500]) / 1e6:.1f} MB over 1500 frames"


def test_layout_grows_inside_the_room_as_the_scene_is_seen(onnx_backend, scene):
    room = PolygonPath(scene.scene.room.polygon)

    def known_cells(session: Session) -> tuple[int, float]:
        layout = session.layout()
        rows, cols = np.nonzero(layout.occupancy != UNKNOWN)
        centres = (np.stack([cols, rows], 1) + 0.5) * layout.resolution + np.array(layout.origin)
        return len(rows), float(room.contains_points(centres, radius=0.3).mean())

    session = Session(onnx_backend)
    frames = list(scene_frames(scene))
    for frame in frames[:3]:
        session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry)
    early, _ = known_cells(session)
    for frame in frames[3:]:
        session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry)
    late, late_inside = known_cells(session)
    assert late >= 2 * early > 0
    assert late_inside > 0.85  # what the map claims to know lies in the true room
    assert session.layout().occupancy.dtype == np.int8


def test_ego_pose_follows_the_camera_with_odometry(onnx_backend, scene):
    session = Session(onnx_backend)
    errors = []
    for frame, truth in zip(scene_frames(scene), scene.scene.frames, strict=True):
        pose = session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry).pose
        errors.append(np.hypot(pose.x - truth.T_world_camera[0, 3], pose.y - truth.T_world_camera[1, 3]))
    assert np.median(errors) < 0.3  # loc3r eval: 0.02 m median on test


def test_questions_answer_from_memory_and_bad_questions_are_refused(onnx_backend, scene):
    session = Session(onnx_backend)
    with pytest.raises(QuestionError, match="no frames yet"):
        session.ask("Is the bed on my left?")
    stream_scene(session, scene)
    situation = scene.situations[0]
    answer = session.ask(situation.questions[0].question, situation.text)
    assert answer.text and 0 < answer.confidence <= 1
    assert np.isfinite([answer.asker.x, answer.asker.y, answer.asker.yaw, answer.asker.sigma_x]).all()
    located = session.localize(situation.text)
    assert located.pose.x == pytest.approx(answer.asker.x, abs=1e-4)  # same <Pos> readout either way
    for bad, match in (("", "empty"), ("   ", "empty"), ("x" * 100_000, "100000 characters"), (None, "text")):
        with pytest.raises(QuestionError, match=match):
            session.ask(bad)
    with pytest.raises(Loc3rError, match="NaN"):
        session.push(scene.rgb(0), 10**12, None, np.full((4, 4), np.nan))
    assert session.ask("How many chairs are there?").text  # still answering after the refusals


def test_torch_and_onnx_sessions_agree(onnx_backend, scene):
    sessions = [Session(TorchBackend()), Session(onnx_backend)]
    poses = [[], []]
    for frame in scene_frames(scene):
        for session, out in zip(sessions, poses, strict=True):
            pose = session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry).pose
            out.append([pose.x, pose.y, pose.yaw])
    np.testing.assert_allclose(poses[0], poses[1], atol=1e-3)
    question = scene.situations[0].questions[0].question
    assert sessions[0].ask(question).text == sessions[1].ask(question).text


def test_shipped_export_matches_the_shipped_checkpoint_fp32_parity():
    errors = check_parity(SHIPPED_MODEL, SHIPPED_EXPORT)
    assert max(errors.values()) < 1e-4, errors  # fp32: float rounding only


def test_fp16_export_parity_and_mismatched_exports_are_refused(tmp_path):
    result = run_cli("export", "--out", tmp_path / "fp16", "--precision", "fp16", check=True)
    errors = {line.split()[1]: float(line.split()[-1]) for line in result.stdout.splitlines()
              if line.strip().startswith("parity")}
    assert set(errors) == set(graph_names(ModelSpec.from_checkpoint(SHIPPED_MODEL)))  # every graph it wrote
    assert max(errors.values()) < 5e-2, errors  # fp16 weights and arithmetic: ~1e-3 relative
    assert json.loads((tmp_path / "fp16" / "runtime.json").read_text())["precision"] == "fp16"
    # a decoder from another export (different bytes) is caught by the manifest's hashes
    mixed = tmp_path / "mixed"
    shutil.copytree(SHIPPED_EXPORT, mixed)
    shutil.copyfile(tmp_path / "fp16" / "decoder.onnx", mixed / "decoder.onnx")
    with pytest.raises(DataError, match=r"decoder\.onnx is not the file this export wrote"):
        OnnxBackend(mixed)
    # an export checked against a checkpoint it did not come from
    other = tmp_path / "other-checkpoint"
    shutil.copytree(SHIPPED_MODEL, other)
    weights = bytearray((other / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF  # other weights, same shapes
    (other / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(DataError, match="exported from another checkpoint"):
        OnnxBackend(SHIPPED_EXPORT, checkpoint=other)
    result = run_cli("run", "--input", tmp_path / "none.mcap", "--out", tmp_path / "x.mcap", "--checkpoint", other,
                     "--onnx", SHIPPED_EXPORT)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "another checkpoint" in result.stderr
    assert not (tmp_path / "x.mcap").exists()


def test_onnx_backend_runs_where_torch_cannot_be_imported(scene):
    script = f"""
import sys
for name in ("torch", "transformers", "accelerate"):  # any import of these now raises, as if not installed
    sys.modules[name] = None
from loc3r_core.runtime.open import open_backend
from loc3r_core.runtime.scenario import scene_frames
from loc3r_core.runtime.session import Session
from loc3r_core.world.scene_io import SceneFolder
folder = SceneFolder({str(scene.path)!r})
session = Session(open_backend("onnx"))
for frame in scene_frames(folder):
    session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry)
print(session.ask("How many chairs are there?").text, len(session.layout().objects) >= 0)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("True")


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_gpu_execution_providers_agree_with_cpu(provider, onnx_backend, scene, tmp_path):
    import onnxruntime as ort

    from loc3r_core.runtime.onnx_backend import PROVIDERS

    if PROVIDERS[provider] not in ort.get_available_providers():
        pytest.skip(f"{PROVIDERS[provider]} is not in this onnxruntime ({', '.join(ort.get_available_providers())}):"
                    " it needs onnxruntime-gpu (with TensorRT for tensorrt) and an NVIDIA GPU")
    gpu = OnnxBackend(provider=provider, engine_cache=tmp_path / "engines")
    assert gpu.providers_in_use()[0] == PROVIDERS[provider]
    sessions = [Session(onnx_backend), Session(gpu)]
    poses = [[], []]
    for frame in scene_frames(scene):
        for session, out in zip(sessions, poses, strict=True):
            pose = session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry).pose
            out.append([pose.x, pose.y, pose.yaw])
    np.testing.assert_allclose(poses[0], poses[1], atol=1e-3 if provider == "cuda" else 5e-2)  # TensorRT runs fp16
    if provider == "tensorrt":
        assert list((tmp_path / "engines").iterdir()), "TensorRT should persist its engines for the next start"
