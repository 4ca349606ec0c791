"""Generating datasets of scene folders: seeds, manifest, parallel workers, resuming.

Scene i of a dataset is drawn from numpy's SeedSequence([seed, i]) alone, so a scene does
not depend on the worker that made it, on the order scenes finished, or on how many scenes
were asked for: any split regenerates bit for bit from its manifest.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from tqdm import tqdm

from loc3r_core import __version__
from loc3r_core.atomic import TMP_PREFIX, atomic_path
from loc3r_core.errors import DataError, UsageError
from loc3r_core.world.build import build_scene
from loc3r_core.world.gl import backend
from loc3r_core.world.knobs import WorldKnobs
from loc3r_core.world.scene import seen_object_ids, transform_situation
from loc3r_core.world.scene_io import SceneWriter, is_complete
from loc3r_core.world.situations import make_situations

GENERATOR_VERSION = 1  # bump whenever the same seed and knobs would give different files
MANIFEST = "manifest.json"
_IDENTITY_KEYS = ("generator_version", "renderer", "seed", "knobs")  # what must match to resume


@dataclass(frozen=True)
class SceneTiming:
    frames: int
    build_s: float  # layout, path and situations
    render_s: float
    write_s: float

    @property
    def total_s(self) -> float:
        return self.build_s + self.render_s + self.write_s


def scene_name(index: int) -> str:
    return f"scene_{index:05d}"


def generate_scene(out_dir: Path, index: int, seed: int, knobs: WorldKnobs) -> SceneTiming:
    """Render scene `index` of the dataset with `seed` into out_dir/scene_NNNNN."""
    # Imported here so that the parent process of a worker pool never loads a GL backend.
    from loc3r_core.world.render import SceneRenderer

    started = time.perf_counter()
    built, rng = build_scene(np.random.SeedSequence([seed, index]), knobs)
    built_at = time.perf_counter()
    writer = SceneWriter(out_dir / scene_name(index))
    render_s = 0.0
    visible: dict[int, int] = {}
    try:
        with SceneRenderer(built.scene, built.style, built.part_colours) as renderer:
            for frame in built.scene.frames:
                t0 = time.perf_counter()
                rendered = renderer.render(frame.T_world_camera)
                render_s += time.perf_counter() - t0
                writer.add_frame(frame.index, rendered)
                ids, counts = np.unique(rendered.instance, return_counts=True)
                for obj_id, count in zip(ids.tolist(), counts.tolist(), strict=True):
                    visible[obj_id] = visible.get(obj_id, 0) + count
        seen = seen_object_ids(visible, knobs.image_size**2)
        t0 = time.perf_counter()
        design_situations = make_situations(rng, built.design, built.agent_space, seen)
        situations = [transform_situation(s, built.T_anchor_design) for s in design_situations]
        situations_s = time.perf_counter() - t0
        meta = {**built.meta, "seed": seed, "index": index, "generator_version": GENERATOR_VERSION}
        writer.commit(built.scene, situations, meta)
    except BaseException:
        writer.abort()
        raise
    total = time.perf_counter() - started
    build_s = built_at - started + situations_s
    return SceneTiming(len(built.scene.frames), build_s, render_s, total - build_s - render_s)


def _manifest(seed: int, scenes: int, knobs: WorldKnobs, split: str | None) -> dict:
    return {
        "generator": "loc3r_core.world",
        "generator_version": GENERATOR_VERSION,
        "loc3r_version": __version__,
        "split": split,
        "seed": seed,
        "scenes": scenes,
        "scene_seed": "numpy.random.SeedSequence([seed, scene_index])",
        "knobs": knobs.to_dict(),
        # Which objects count as seen (and so which situations exist) follows the rendered
        # pixels: bit-for-bit regeneration needs the same MuJoCo and GL backend.
        "renderer": {"mujoco": metadata.version("mujoco"), "gl": backend()},
    }


def load_manifest(path: Path) -> dict:
    """A dataset's manifest.json, checked to be one this generator can reproduce."""
    try:
        manifest = json.loads(path.read_text())
        WorldKnobs.from_dict(manifest["knobs"])
        int(manifest["seed"]), int(manifest["scenes"])
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a loc3r dataset manifest ({exc!r})") from exc
    if manifest.get("generator_version") != GENERATOR_VERSION:
        raise DataError(f"{path} was made by generator version {manifest.get('generator_version')}; "
                        f"this loc3r has version {GENERATOR_VERSION} and cannot reproduce it")
    return manifest


def _write_json_atomically(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


@dataclass(frozen=True)
class GenerationReport:
    generated: int
    skipped: int  # complete scenes found from an earlier run
    frames: int
    wall_s: float
    worker_s: float  # time the workers spent on scenes, summed

    @property
    def frames_per_s_per_worker(self) -> float:
        return self.frames / self.worker_s if self.worker_s else 0.0


def generate_dataset(
    out_dir: Path,
    scenes: int,
    seed: int,
    knobs: WorldKnobs,
    workers: int = 1,
    split: str | None = None,
    progress: bool = True,
) -> GenerationReport:
    """Make (or complete) a dataset of `scenes` scene folders in out_dir."""
    knobs.validate()
    if scenes < 1:
        raise UsageError(f"--scenes must be at least 1, not {scenes}")
    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, not {seed}")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(seed, scenes, knobs, split)
    earlier = _check_resumable(out_dir, manifest)
    if earlier is not None:
        manifest["scenes"] = max(scenes, int(earlier.get("scenes", 0)))
    _write_json_atomically(out_dir / MANIFEST, manifest)
    for leftover in out_dir.glob(f"{TMP_PREFIX}*"):  # scenes an interrupted run left half-written
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

    todo = [i for i in range(scenes) if not is_complete(out_dir / scene_name(i))]
    started = time.perf_counter()
    with tqdm(total=scenes, initial=scenes - len(todo), unit="scene", desc="generating", disable=not progress) as bar:
        timings = _generate_scenes(out_dir, todo, seed, knobs, workers, bar)
    return GenerationReport(
        generated=len(timings),
        skipped=scenes - len(todo),
        frames=sum(t.frames for t in timings),
        wall_s=time.perf_counter() - started,
        worker_s=sum(t.total_s for t in timings),
    )


def _check_resumable(out_dir: Path, manifest: dict) -> dict | None:
    """The earlier manifest of a dataset this run may complete, or None for a new one.

    Refuses scenes made with other settings, scenes without a manifest, and scene folders this
    generator did not write (it writes them complete or not at all).
    """
    folders = sorted(out_dir.glob("scene_*"))
    foreign = [p.name for p in folders if not is_complete(p)]
    if foreign:
        raise UsageError(f"{out_dir} holds folders that are not complete scenes ({', '.join(foreign[:3])}); "
                         "remove them or use another --out")
    if not folders:
        return None
    if not (out_dir / MANIFEST).exists():
        raise UsageError(f"{out_dir} holds scenes but no {MANIFEST}, so their settings are unknown; "
                         "use another --out")
    earlier = load_manifest(out_dir / MANIFEST)
    differing = [f"{k}: {earlier.get(k)} there, {manifest[k]} now" for k in _IDENTITY_KEYS
                 if earlier.get(k) != manifest[k]]
    if differing:
        raise UsageError(f"{out_dir} holds scenes made with other settings ({'; '.join(differing)}); "
                         "use another --out, or the same settings to resume")
    return earlier


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which cancels what is queued and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _generate_scenes(
    out_dir: Path, todo: list[int], seed: int, knobs: WorldKnobs, workers: int, bar: tqdm
) -> list[SceneTiming]:
    timings = []
    if workers == 1 or len(todo) <= 1:
        for i in todo:
            timings.append(generate_scene(out_dir, i, seed, knobs))
            bar.update()
        return timings
    context = multiprocessing.get_context("spawn")  # no GL state or threads inherited
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_ignore_sigint)
    try:
        futures = [pool.submit(generate_scene, out_dir, i, seed, knobs) for i in todo]
        for future in as_completed(futures):
            timings.append(future.result())
            bar.update()
    finally:
        # On Ctrl-C or a failed scene, drop what has not started; scenes in progress finish, or
        # stay temporary folders that the next run removes.
        pool.shutdown(wait=True, cancel_futures=True)
    return timings
