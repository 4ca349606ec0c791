"""`loc3r bench`: what the runtime costs per call, by backend and by memory size.

For each memory size N (keyframes in memory) it measures, on frames of a synthetic scene:
- keyframe_update_ms: a frame pushed as a keyframe while N are in memory (then taken back out,
  so every sample sees N);
- ego_pose_ms: a frame pushed that is not a keyframe (the per-frame cost at camera rate);
- visual_ego_pose_ms: the same without odometry, its prior read by the visual odometry network;
- layout_refresh_ms: rebuilding the layout (grid + objects) from the fused evidence;
- query_p50_ms / query_p95_ms: `ask` latency over the scene's situated questions;
- memory_rebuild_ms: re-running the memory after an eviction (once per max_keyframes/4 keyframes).
Sessions run with the scene's camera mount (the floor scale on), as the node takes it from a
robot's /tf_static. Medians unless named otherwise. The ONNX-only peak memory comes from a child process that
imports no torch (bench_probe).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from itertools import cycle, islice
from pathlib import Path

import numpy as np

from loc3r_core.runtime.backend import Backend
from loc3r_core.runtime.floor_scale import CameraMount
from loc3r_core.runtime.keyframes import KeyframePolicy
from loc3r_core.runtime.scenario import scene_camera_mount, scene_frames
from loc3r_core.runtime.session import Session, SessionConfig
from loc3r_core.runtime.visual_odometry import open_visual_odometry
from loc3r_core.types import InputFrame
from loc3r_core.world.scene_io import SceneFolder

SIZES = (8, 16, 32, 64)
METRICS = ("keyframe_update_ms", "ego_pose_ms", "visual_ego_pose_ms", "layout_refresh_ms", "query_p50_ms",
           "query_p95_ms", "memory_rebuild_ms")
NEVER = KeyframePolicy(min_translation=float("inf"), min_rotation_deg=float("inf"), max_interval_s=float("inf"))


def timed_ms(call: Callable[[], object], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e3)
    return samples


def bench_backend(backend: Backend, folder: SceneFolder, sizes: Sequence[int] = SIZES, repeats: int = 20,
                  questions: int = 20) -> dict[str, dict[int, float]]:
    frames = list(scene_frames(folder))
    pairs = [(s.text, q.question) for s in folder.situations for q in s.questions][:questions]
    mount = scene_camera_mount(folder)
    results: dict[str, dict[int, float]] = {name: {} for name in METRICS}
    for size in sizes:
        for name, value in bench_size(backend, frames, pairs, size, repeats, mount).items():
            results[name][size] = value
    return results


def bench_size(backend: Backend, frames: list[InputFrame], pairs: list[tuple[str, str]], size: int,
               repeats: int, mount: CameraMount | None = None) -> dict[str, float]:
    session = Session(backend, SessionConfig(max_keyframes=size + 1, keyframes=NEVER, camera_mount=mount),
                      open_visual_odometry())
    stream = cycle(frames)
    for frame in islice(stream, size):
        push(session, frame, keyframe=True)
    push(session, next(stream), keyframe=False)  # warm-up at this memory length

    def keyframe_update() -> None:
        cache = session.cache
        push(session, next(stream), keyframe=True)
        session.memory.pop()  # back to `size` keyframes for the next sample
        session.cache = cache

    def layout_refresh() -> None:
        session._layout = None
        session.layout()

    latencies = [timed_ms(lambda pair=pair: session.ask(pair[1], pair[0]), 1)[0] for pair in pairs]
    return {
        "keyframe_update_ms": median(timed_ms(keyframe_update, repeats)),
        "ego_pose_ms": median(timed_ms(lambda: push(session, next(stream), keyframe=False), repeats)),
        # consecutive frames without odometry: each one's step is read against the one before
        "visual_ego_pose_ms": median(timed_ms(lambda: push(session, next(stream), False, odometry=False), repeats)),
        "layout_refresh_ms": median(timed_ms(layout_refresh, max(3, repeats // 4))),
        "query_p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "query_p95_ms": round(float(np.percentile(latencies, 95)), 2),
        "memory_rebuild_ms": median(timed_ms(session._rebuild_cache, max(3, repeats // 4))),
    }


def push(session: Session, frame: InputFrame, keyframe: bool, odometry: bool = True) -> None:
    session.push(frame.rgb, frame.stamp_ns, frame.intrinsics, frame.odometry if odometry else None,
                 force_keyframe=keyframe)


def median(samples: list[float]) -> float:
    return round(float(np.median(samples)), 2)


def onnx_speedup(results: dict[str, dict[str, dict[int, float]]], size: int = 32) -> float:
    """PyTorch time over ONNX time for the same work: a keyframe, a frame and a question at `size`."""
    def work(backend: str) -> float:
        r = results[backend]
        return r["keyframe_update_ms"][size] + r["ego_pose_ms"][size] + r["query_p50_ms"][size]
    return round(work("torch") / work("onnx"), 2)


def onnx_peak_rss_mb(scene: Path, export: Path | None, sizes: Sequence[int]) -> float:
    """Peak resident memory of a fresh process that streams and answers with the ONNX backend alone."""
    command = [sys.executable, "-m", "loc3r_core.runtime.bench_probe", str(scene), ",".join(map(str, sizes))]
    if export is not None:
        command.append(str(export))
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the ONNX-only probe failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)["peak_rss_mb"]
