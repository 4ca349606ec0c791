"""Generation throughput: frames per second per worker, and what a full dataset would cost."""

from __future__ import annotations

import tempfile
from pathlib import Path

from loc3r_core.world.generate import generate_dataset, generate_scene
from loc3r_core.world.knobs import WorldKnobs

REFERENCE_SCENES, REFERENCE_FRAMES = 1000, 32  # the dataset size the budget is stated for


def benchmark_generation(knobs: WorldKnobs, scenes: int, workers: int) -> dict:
    """Time `scenes` scenes in one process (stage by stage), then with `workers` processes."""
    with tempfile.TemporaryDirectory(prefix="loc3r-bench-") as tmp:
        single = [generate_scene(Path(tmp), i, 0, knobs) for i in range(scenes)]
        frames = sum(t.frames for t in single)
        single_s = sum(t.total_s for t in single)
        # Several scenes per worker, so process start-up (about 2 s) weighs less on the figure.
        report = generate_dataset(Path(tmp) / "parallel", 3 * scenes * workers, 1, knobs, workers=workers,
                                  progress=False)
    parallel_fps = report.frames / report.wall_s
    reference_frames = REFERENCE_SCENES * REFERENCE_FRAMES
    return {
        "image_size": knobs.image_size,
        "frames_per_scene": knobs.frames,
        "frames_per_s_per_worker": frames / single_s,
        "stage_ms_per_frame": {
            "build": 1000 * sum(t.build_s for t in single) / frames,
            "render": 1000 * sum(t.render_s for t in single) / frames,
            "write": 1000 * sum(t.write_s for t in single) / frames,
        },
        "workers": workers,
        "frames_per_s_total": parallel_fps,
        "estimated_minutes_1000_scenes_32_frames": reference_frames / parallel_fps / 60,
    }


def format_report(result: dict) -> str:
    stages = result["stage_ms_per_frame"]
    return "\n".join([
        f"generation at {result['image_size']}x{result['image_size']}, {result['frames_per_scene']} frames/scene, "
        "RGB + depth + instances",
        f"  one worker:   {result['frames_per_s_per_worker']:.1f} frames/s "
        f"(per frame: build {stages['build']:.1f} ms, render {stages['render']:.1f} ms, "
        f"write {stages['write']:.1f} ms)",
        f"  {result['workers']} workers:    {result['frames_per_s_total']:.1f} frames/s in all (start-up included)",
        f"  1000 scenes x 32 frames with {result['workers']} workers: "
        f"~{result['estimated_minutes_1000_scenes_32_frames']:.1f} min (budget: 60 min)",
    ])
