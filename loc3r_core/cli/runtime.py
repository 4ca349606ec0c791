"""`loc3r export`, `loc3r demo`, `loc3r run`, `loc3r bench`: the streaming runtime from the command line."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

from loc3r_core.errors import UsageError
from loc3r_core.static_transforms import DEFAULT_FLOOR_FRAME


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=["onnx", "torch"], default="onnx",
                        help="onnx (ONNX Runtime, no torch needed; default) or torch (PyTorch eager)")
    parser.add_argument("--checkpoint", type=Path, help="model folder (default: the shipped model)")
    parser.add_argument("--onnx", type=Path, help="`loc3r export` folder (default: the shipped model's)")
    parser.add_argument("--provider", choices=["cpu", "cuda", "tensorrt"], default="cpu",
                        help="ONNX Runtime execution provider (default cpu)")


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="export a checkpoint's runtime graphs to ONNX")
    export.add_argument("--checkpoint", type=Path, help="model folder (default: the shipped model)")
    export.add_argument("--out", type=Path, required=True, help="folder to write (replaced atomically)")
    export.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                        help="fp16 halves the files and suits CUDA/TensorRT (default fp32)")
    export.set_defaults(handler=_export)

    motion = commands.add_parser("export-motion", help="export a visual odometry network to ONNX, in its folder")
    motion.add_argument("--motion", type=Path, help="network folder (default: the shipped one)")
    motion.set_defaults(handler=_export_motion)

    demo = commands.add_parser("demo", help="stream a new synthetic room through the runtime; MCAP + PNG")
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    demo.add_argument("--seed", type=int, default=None, help="scene seed (default: one no split uses)")
    demo.add_argument("--no-progress", action="store_true")
    add_backend_arguments(demo)
    demo.set_defaults(handler=_demo)

    run = commands.add_parser("run", help="run a ROS 2 bag (sqlite3/MCAP) or a video through the runtime")
    run.add_argument("--input", type=Path, required=True, help="bag folder, .mcap, .db3 folder or video file")
    run.add_argument("--image-topic", help="sensor_msgs/Image or CompressedImage topic (default: the only one)")
    run.add_argument("--camera-info-topic", help="sensor_msgs/CameraInfo topic")
    run.add_argument("--odom-topic", help="nav_msgs/Odometry topic: the pose prior")
    run.add_argument("--out", type=Path, required=True, help="MCAP file to write (ROS 2 messages)")
    run.add_argument("--ask", action="append", default=[], metavar="QUESTION", help="ask after the stream; repeatable")
    run.add_argument("--situation", help="the asker's situation for every --ask (default: none given)")
    run.add_argument("--max-frames", type=int, help="stop after this many images")
    run.add_argument("--png", type=Path, help="also draw the map and path to this PNG")
    run.add_argument("--no-visual-odometry", action="store_true",
                     help="frames without odometry get no pose prior (default: the visual odometry network's)")
    run.add_argument("--motion", type=Path, help="visual odometry network folder (default: the shipped one)")
    run.add_argument("--no-room-axes", action="store_true",
                     help="visual odometry does not snap its heading to the walls' directions (for buildings whose "
                          "walls do not meet at right angles)")
    run.add_argument("--camera-height", type=float, metavar="M",
                     help="the camera's height above the floor: each keyframe's floor then sets its map points' "
                          "scale (default: the bag's /tf_static, else unknown: the model's own scale)")
    run.add_argument("--camera-pitch", type=float, default=0.0, metavar="DEG",
                     help="the camera's pitch, negative looking down (with --camera-height; default 0)")
    run.add_argument("--floor-frame", default=DEFAULT_FLOOR_FRAME,
                     help="the robot's frame on the floor, z up, that /tf_static measures the camera's mount from "
                          f"(default {DEFAULT_FLOOR_FRAME})")
    run.add_argument("--no-tf-mount", action="store_true",
                     help="ignore the bag's /tf_static: without --camera-height the map keeps the model's own scale")
    run.add_argument("--no-progress", action="store_true")
    add_backend_arguments(run)
    run.set_defaults(handler=_run)

    bench = commands.add_parser("bench", help="time the runtime per backend and memory size")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--sizes", default="8,16,32,64", help="keyframes in memory to measure (default 8,16,32,64)")
    bench.add_argument("--repeats", type=int, default=20, help="samples per figure (default 20)")
    bench.add_argument("--backends", default="torch,onnx", help="comma list (default torch,onnx)")
    bench.add_argument("--onnx", type=Path, help="`loc3r export` folder (default: the shipped model's)")
    bench.add_argument("--provider", choices=["cpu", "cuda", "tensorrt"], default="cpu",
                       help="execution provider for the onnx backend, and cuda for torch (default cpu)")
    bench.set_defaults(handler=_bench)


def _export(args: argparse.Namespace) -> int:
    from loc3r_core.export.onnx_export import export_checkpoint
    from loc3r_core.export.parity import check_parity

    manifest = export_checkpoint(args.checkpoint, args.out, args.precision)
    size = sum(p.stat().st_size for p in args.out.iterdir()) / 1e6
    print(f"wrote {args.out} ({args.precision}, {len(manifest['files'])} files, {size:.1f} MB)")
    for name, error in check_parity(args.checkpoint, args.out).items():
        print(f"  parity {name:<8} max |onnx - torch| = {error:.2e}")
    return 0


def _export_motion(args: argparse.Namespace) -> int:
    from loc3r_core.export.motion_export import export_motion, motion_parity
    from loc3r_core.model.motion import load_motion

    load_motion(args.motion)  # a missing or damaged folder is one line before the exporter starts
    export_motion(args.motion)
    print(f"wrote motion.onnx in {args.motion or 'the shipped network'}; parity max |onnx - torch| = "
          f"{motion_parity(args.motion):.2e}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from loc3r_core.runtime.demo import run_demo
    from loc3r_core.runtime.open import open_backend
    from loc3r_core.runtime.scenario import DEMO_SEED

    backend = open_backend(args.backend, args.checkpoint, args.onnx, args.provider)
    run_demo(args.out, backend, DEMO_SEED if args.seed is None else args.seed, progress=not args.no_progress)
    return 0


def _run(args: argparse.Namespace) -> int:
    from loc3r_core.io.mcap_writer import RosMcapWriter
    from loc3r_core.io.recording import is_bag, read_recording
    from loc3r_core.runtime.figure import draw_run
    from loc3r_core.runtime.floor_scale import CameraMount
    from loc3r_core.runtime.open import open_backend
    from loc3r_core.runtime.recorder import McapRecorder, stream
    from loc3r_core.runtime.session import QuestionError, Session, SessionConfig
    from loc3r_core.runtime.visual_odometry import open_visual_odometry

    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError("--max-frames must be at least 1")
    if args.out.suffix != ".mcap":
        raise UsageError(f"--out must name an .mcap file, not {args.out}")
    if (args.motion is not None or args.no_room_axes) and args.no_visual_odometry:
        raise UsageError("--motion and --no-room-axes set the visual odometry that --no-visual-odometry turns off")
    mount = None
    if args.camera_height is not None:
        mount = CameraMount(args.camera_height, args.camera_pitch)
        try:
            mount.validate()
        except ValueError as exc:
            raise UsageError(f"--camera-height/--camera-pitch: {exc}") from None
    elif args.camera_pitch != 0.0:
        raise UsageError("--camera-pitch needs --camera-height")
    backend = open_backend(args.backend, args.checkpoint, args.onnx, args.provider)
    visual = None if args.no_visual_odometry else open_visual_odometry(args.motion, not args.no_room_axes)
    frames = read_recording(args.input, args.image_topic, args.camera_info_topic, args.odom_topic, args.max_frames)
    if mount is None and not args.no_tf_mount and is_bag(args.input):
        first = next(frames, None)  # the images' frame_id names the camera in the static transforms
        if first is not None:
            frames = itertools.chain([first], frames)
            mount = _mount_from_static_transforms(args.input, args.floor_frame, first.frame_id)
    session = Session(backend, SessionConfig(camera_mount=mount), visual_odometry=visual)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with RosMcapWriter(args.out) as writer:  # written aside: a failure leaves no half file
        recorder = McapRecorder(writer)
        last = stream(session, frames, recorder, progress=not args.no_progress)
        if last is None:
            raise UsageError(f"{args.input} has no images on the chosen topic")
        for question in args.ask:
            try:
                answer = session.ask(question, args.situation)
            except QuestionError as exc:
                raise UsageError(f"--ask {question[:40]!r}: {exc}") from None
            recorder.qa(last.stamp_ns, question, args.situation, answer)
            print(f"Q: {question}\nA: {answer.text}  (by the {answer.source}, confidence {answer.confidence:.2f}; "
                  f"asker placed at ({answer.asker.x:+.2f}, {answer.asker.y:+.2f}) m)")
        recorder.layout(session, last.stamp_ns)
    layout = session.layout()
    print(f"{session.frames_seen} frames, {len(session.memory)} keyframes in memory, {len(layout.objects)} objects; "
          f"wrote {args.out}")
    if args.png:
        draw_run(args.png, layout, session.trajectory_xy(), [], None, f"loc3r run: {args.input.name}")
        print(f"wrote {args.png}")
    return 0


def _mount_from_static_transforms(bag: Path, floor_frame: str, camera_frame: str):
    """The camera's mount from the bag's /tf_static (None, said why, where it gives none)."""
    from loc3r_core.io.recording import read_static_transforms
    from loc3r_core.runtime.floor_scale import find_camera_mount

    transforms, problems = read_static_transforms(bag)
    for problem in problems:
        print(f"/tf_static: {problem} (left out)", file=sys.stderr)
    try:
        mount = find_camera_mount(transforms, floor_frame, camera_frame)
    except ValueError as exc:
        print(f"camera mount: none ({exc}); the map keeps the model's own scale")
        return None
    print(f"camera mount from /tf_static: {mount.height_m:.3f} m above {floor_frame}, pitch {mount.pitch_deg:+.1f} deg")
    return mount


def _bench(args: argparse.Namespace) -> int:
    from loc3r_core.runtime.bench import METRICS, bench_backend, onnx_peak_rss_mb, onnx_speedup
    from loc3r_core.runtime.open import open_backend
    from loc3r_core.runtime.scenario import DEMO_SEED, fresh_scene

    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        raise UsageError(f"--sizes takes comma-separated integers, not {args.sizes!r}") from None
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not sizes or min(sizes) < 1 or max(sizes) > 200:
        raise UsageError("--sizes must lie in [1, 200]")
    if args.repeats < 3:
        raise UsageError("--repeats must be at least 3")
    with tempfile.TemporaryDirectory(prefix="loc3r-bench-") as tmp:
        folder = fresh_scene(Path(tmp), "test", DEMO_SEED)
        results = {name: bench_backend(open_backend(name, onnx=args.onnx if name == "onnx" else None,
                                                    provider=args.provider), folder, sizes, args.repeats)
                   for name in backends}
        report: dict = {metric: {name: results[name][metric] for name in backends} for metric in METRICS}
        report["onnx_speedup"] = onnx_speedup(results, 32 if 32 in sizes else sizes[-1]) \
            if {"torch", "onnx"} <= set(backends) else None
        report["onnx_peak_rss_mb"] = onnx_peak_rss_mb(folder.path, args.onnx, sizes) if "onnx" in backends else None
    report["sizes"] = sizes
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{'ms (median)':<20}" + "".join(f"{name}@{n:<6}" for name in backends for n in sizes))
    for metric in METRICS:
        print(f"{metric:<20}" + "".join(f"{report[metric][name][n]:<{len(name) + 7}.2f}"
                                        for name in backends for n in sizes))
    print(f"onnx_speedup (torch/onnx, keyframe + frame + question at 32): {report['onnx_speedup']}")
    print(f"onnx_peak_rss_mb (ONNX-only process): {report['onnx_peak_rss_mb']}")
    return 0
