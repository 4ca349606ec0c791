"""`loc3r data generate/show/bench` as a user runs them: layout, determinism, resume, errors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, run_cli
from loc3r_core.world.knobs import SPLITS

TINY = ["--frames", "6", "--image-size", "64", "--no-progress"]


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "data"
    run_cli("data", "generate", "--out", out, "--scenes", "4", "--seed", "7", *TINY, check=True)
    return out


def test_generate_writes_a_manifest_and_complete_scene_folders(reference):
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["scenes"] == 4 and manifest["generator_version"] >= 1
    assert manifest["knobs"]["frames"] == 6 and manifest["knobs"]["image_size"] == 64
    assert sorted(p.name for p in reference.iterdir()) == ["manifest.json"] + [f"scene_{i:05d}" for i in range(4)]
    for scene in reference.glob("scene_*"):
        assert {p.name for p in scene.iterdir()} == {"scene.json", "situations.jsonl", "rgb", "depth", "instance"}
        assert Image.open(scene / "rgb" / "0005.png").size == (64, 64)


def test_generation_is_bit_for_bit_reproducible_whatever_the_workers(reference, tmp_path):
    again = tmp_path / "again"
    run_cli("data", "generate", "--out", again, "--scenes", "4", "--seed", "7", "--workers", "2", *TINY, check=True)
    assert digests(again) == digests(reference)


def test_a_killed_run_leaves_no_half_scene_and_resumes_to_the_same_files(reference, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "loc3r_core.cli.main", "data", "generate", "--out", str(out), "--scenes", "4",
           "--seed", "7", *TINY]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "scene_00000" / "scene.json").exists():  # wait until one scene is done
        assert proc.poll() is None and time.monotonic() < deadline, "generation ended or stalled early"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for scene in out.glob("scene_*"):
        assert (scene / "scene.json").exists(), f"{scene.name} is half-written"
    result = run_cli("data", "generate", "--out", out, "--scenes", "4", "--seed", "7", *TINY, check=True)
    assert "already complete" in result.stdout
    assert not list(out.glob(".tmp-*")), "leftovers of the killed run are cleaned up"
    assert digests(out) == digests(reference)


@pytest.mark.parametrize("args, message", [
    (["--room-size", "7", "3"], "--room-size MIN MAX needs MIN <= MAX"),
    (["--objects", "2", "99"], "--objects must lie within"),
    (["--camera-height", "0.5", "2.9"], "--camera-height must lie within"),
    (["--camera-pitch", "x", "1"], "invalid float value"),
    (["--trajectory", "fly"], "invalid choice"),
    (["--frames", "1"], "--frames must be between"),
    (["--image-size", "8"], "--image-size must be between"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--seed", "-1"], "--seed must be a non-negative integer"),
    (["--split", "nope"], "invalid choice"),
])
def test_invalid_knobs_get_one_line_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "bad"
    result = run_cli("data", "generate", "--out", out, "--scenes", "1", *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert not out.exists()


def test_regenerating_from_a_manifest_gives_the_same_files(reference, tmp_path):
    again = tmp_path / "from_manifest"
    run_cli("data", "generate", "--out", again, "--manifest", reference / "manifest.json", "--no-progress", check=True)
    assert digests(again) == digests(reference)
    mixed = run_cli("data", "generate", "--out", again, "--manifest", reference / "manifest.json", "--frames", "9")
    assert mixed.returncode == 2 and "drop --frames" in mixed.stderr


def test_ctrl_c_stops_a_parallel_run_at_once_and_it_resumes(reference, tmp_path):
    out = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "loc3r_core.cli.main", "data", "generate", "--out", str(out), "--scenes", "60",
           "--seed", "7", "--workers", "2", *TINY]
    # As from a terminal: a shell's background job (nohup make test &) inherits SIGINT ignored,
    # and Python then installs no KeyboardInterrupt handler, so give the child the default back.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(list(out.glob("scene_*/scene.json"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "generation ended or stalled early"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group, workers included
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130 and stderr.strip().splitlines()[-1] == "loc3r: interrupted", stderr
    assert "Traceback" not in stderr
    made = list(out.glob("scene_*"))
    assert 2 <= len(made) < 60 and all((p / "scene.json").exists() for p in made)
    run_cli("data", "generate", "--out", out, "--scenes", "4", "--seed", "7", *TINY, check=True)
    assert {k: v for k, v in digests(out).items() if k.split("/")[0] in {f"scene_{i:05d}" for i in range(4)}} \
        == {k: v for k, v in digests(reference).items() if k.startswith("scene_")}


def test_folders_it_cannot_vouch_for_are_refused(reference, tmp_path):
    stray = tmp_path / "stray"
    (stray / "scene_00000").mkdir(parents=True)
    result = run_cli("data", "generate", "--out", stray, "--scenes", "1", *TINY)
    assert result.returncode == 2 and "not complete scenes" in result.stderr
    orphan = tmp_path / "orphan"
    shutil.copytree(reference / "scene_00000", orphan / "scene_00000")
    result = run_cli("data", "generate", "--out", orphan, "--scenes", "1", *TINY)
    assert result.returncode == 2 and "no manifest.json" in result.stderr
    broken = tmp_path / "broken"
    shutil.copytree(reference, broken)
    (broken / "manifest.json").write_text("{")
    result = run_cli("data", "generate", "--out", broken, "--scenes", "4", "--seed", "7", *TINY)
    assert result.returncode == 1 and "is not a loc3r dataset manifest" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = run_cli("data", "generate", "--out", a_file, "--scenes", "1", *TINY)
    assert result.returncode == 2 and "not a directory" in result.stderr
    result = run_cli("data", "show", reference / "scene_00000", "--out", tmp_path)
    assert result.returncode == 2 and "is a directory" in result.stderr


def test_resuming_with_other_settings_is_refused(reference, tmp_path):
    result = run_cli("data", "generate", "--out", reference, "--scenes", "4", "--seed", "8", *TINY)
    assert result.returncode == 2 and "other settings" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_split_presets_set_the_knobs(tmp_path):
    train, novel, complex_ = (SPLITS[n].knobs for n in ("train", "test-novel-view", "test-complex"))
    assert novel.camera_height[0] > train.camera_height[1] and novel.camera_pitch[1] < train.camera_pitch[0]
    assert complex_.objects[0] > train.objects[1] and complex_.room_size[1] > train.room_size[1]
    assert len({split.seed for split in SPLITS.values()}) == len(SPLITS), "no split shares another's scenes"
    out = tmp_path / "novel"
    run_cli("data", "generate", "--out", out, "--split", "test-novel-view", "--scenes", "2", *TINY, check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["split"] == "test-novel-view" and manifest["seed"] == SPLITS["test-novel-view"].seed
    for scene in out.glob("scene_*"):
        meta = json.loads((scene / "scene.json").read_text())["meta"]
        assert novel.camera_height[0] <= meta["camera_height"] <= novel.camera_height[1]
        assert novel.camera_pitch[0] <= meta["camera_pitch_deg"] <= novel.camera_pitch[1]


def test_show_draws_the_contact_sheet(reference, tmp_path):
    out = tmp_path / "sheet.png"
    result = run_cli("data", "show", reference / "scene_00001", "--out", out, check=True)
    assert str(out) in result.stdout
    assert Image.open(out).size == (1800, 1000)


def test_show_of_something_that_is_not_a_scene_fails_in_one_line(tmp_path):
    result = run_cli("data", "show", tmp_path, "--out", tmp_path / "x.png")
    assert result.returncode == 1 and "not a loc3r scene folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.png").exists()


def test_bench_prints_throughput_figures():
    result = run_cli("data", "bench", "--scenes", "1", "--frames", "4", "--image-size", "64", "--json", check=True)
    figures = json.loads(result.stdout)
    assert figures["frames_per_s_per_worker"] > 0 and figures["frames_per_s_total"] > 0
    assert set(figures["stage_ms_per_frame"]) == {"build", "render", "write"}


def test_the_installed_console_script_runs():
    script = Path(sys.executable).with_name("loc3r")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("loc3r ")


@pytest.mark.parametrize("damage, message", [
    (lambda s: (s / "rgb" / "0002.png").write_bytes((s / "rgb" / "0002.png").read_bytes()[:60]), "cannot be read"),
    (lambda s: (s / "scene.json").write_text('{"room": '), "cannot be read"),
    (lambda s: (s / "scene.json").write_text('{"room": {}}'), "is malformed"),
    (lambda s: (s / "situations.jsonl").write_text('{"id": 0}\n'), "is malformed"),
])
def test_a_damaged_scene_gets_one_readable_line(reference, tmp_path, damage, message):
    scene = tmp_path / "scene_00000"
    shutil.copytree(reference / "scene_00000", scene)
    damage(scene)
    result = run_cli("data", "show", scene, "--out", tmp_path / "sheet.png")
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "sheet.png").exists()
