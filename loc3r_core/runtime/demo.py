"""`loc3r demo`: a new synthetic room streamed through the runtime as if from a robot's camera.

It prints where the model placed a few situations and its answers to a few questions next
to the ground truth, and writes OUT/demo.mcap (ROS 2 messages) and OUT/demo.png.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loc3r_core.geometry import planar_camera_pose, wrap_angle
from loc3r_core.io.mcap_writer import RosMcapWriter
from loc3r_core.runtime.backend import Backend
from loc3r_core.runtime.figure import PlacedSituation, draw_run
from loc3r_core.runtime.recorder import McapRecorder, stream
from loc3r_core.runtime.scenario import DEMO_SEED, fresh_scene, scene_camera_mount, scene_frames
from loc3r_core.runtime.session import Session, SessionConfig


@dataclass(frozen=True)
class DemoResult:
    mcap: Path
    png: Path
    frames: int
    keyframes_encoded: int
    ego_median_error_m: float
    ego_median_error_deg: float
    localization_errors_m: list[float]
    answers_correct: int
    answers_total: int


def run_demo(out: Path, backend: Backend, seed: int = DEMO_SEED, split: str = "test", situations: int = 3,
             questions: int = 5, progress: bool = True) -> DemoResult:
    started = time.perf_counter()
    folder = fresh_scene(out / "world", split, seed)
    scene = folder.scene
    print(f"scene: {len(scene.objects)} objects ({', '.join(o.label for o in scene.objects)}), "
          f"{len(scene.frames)} frames; rendered in {time.perf_counter() - started:.1f} s")
    session = Session(backend, SessionConfig(camera_mount=scene_camera_mount(folder)))  # as a robot knows its mount
    start_ns = time.time_ns()
    placed: list[PlacedSituation] = []
    with RosMcapWriter(out / "demo.mcap") as writer:  # written aside, renamed when complete
        recorder = McapRecorder(writer)
        last = stream(session, scene_frames(folder, odometry=True, start_ns=start_ns), recorder,
                      total=len(scene.frames), progress=progress)
        stamp = last.stamp_ns + 1 if last is not None else start_ns
        print(f"\nwhere the model places situations ({backend.name} backend, "
              f"{len(session.memory)} keyframes in memory):")
        errors = []
        for situation in folder.situations[:situations]:
            found = session.localize(situation.text)
            p = found.pose
            error = math.hypot(p.x - situation.position[0], p.y - situation.position[1])
            errors.append(error)
            yaw_error = abs(math.degrees(float(wrap_angle(p.yaw - situation.yaw))))
            print(f"  \"{situation.text}\"\n    true ({situation.position[0]:+.2f}, {situation.position[1]:+.2f}) "
                  f"{math.degrees(situation.yaw):+4.0f}°   model ({p.x:+.2f}, {p.y:+.2f}) {math.degrees(p.yaw):+4.0f}° "
                  f"± {max(p.sigma_x, p.sigma_y):.2f} m   error {error:.2f} m, {yaw_error:.0f}°")
            placed.append(PlacedSituation(f"S{len(placed) + 1}", p,
                                          (float(situation.position[0]), float(situation.position[1]),
                                           float(situation.yaw))))
        print("\nanswers (situated questions):")
        correct = total = 0
        for situation in folder.situations:
            if total >= questions:
                break
            for question in situation.questions[:1]:
                answer = session.ask(question.question, situation.text)
                recorder.qa(stamp, question.question, situation.text, answer)
                ok = answer.text.strip().lower() == question.answer.strip().lower()
                correct, total = correct + ok, total + 1
                print(f"  {question.question:<52} {answer.source + ':':<6} {answer.text:<12} "
                      f"({answer.confidence:.2f})  truth: {question.answer:<12} {'✓' if ok else '✗'}")
        recorder.layout(session, stamp)
    truth = planar_camera_pose(np.stack([f.T_world_camera for f in scene.frames]))
    path = np.array([pose for _, pose in session.trajectory])
    ego_m = float(np.median(np.hypot(*(path[:, :2] - truth[:, :2]).T)))
    ego_deg = float(np.degrees(np.median(np.abs(wrap_angle(path[:, 2] - truth[:, 2])))))
    layout = session.layout()
    png = draw_run(out / "demo.png", layout, session.trajectory_xy(), placed, scene,
                   f"loc3r demo: {len(layout.objects)} objects found, ego error {ego_m:.2f} m / {ego_deg:.1f}° "
                   f"(median), {correct}/{total} answers right")
    result = DemoResult(out / "demo.mcap", png, len(scene.frames), session.images_encoded, ego_m, ego_deg, errors,
                        correct, total)
    print(f"\nego pose (every frame, odometry as prior): median error {ego_m:.3f} m, {ego_deg:.2f}°")
    print(f"layout: {len(layout.objects)} objects: "
          + ", ".join(f"{o.label} at ({o.center[0]:+.1f}, {o.center[1]:+.1f})" for o in layout.objects))
    print(f"wrote {result.mcap} and {result.png} in {time.perf_counter() - started:.1f} s")
    return result
