"""A scene folder on disk: written aside and renamed into place, read back with checks.

    scene_NNNNN/
      scene.json          room, objects, intrinsics, frames (see world.scene.Scene.to_json)
      situations.jsonl    one situation per line, with its questions
      rgb/NNNN.png        8-bit RGB
      depth/NNNN.png      16-bit z-depth in millimetres, 0 = no measurement
      instance/NNNN.png   8-bit object id, 0 = room structure
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from loc3r_core.atomic import TMP_PREFIX
from loc3r_core.errors import DataError
from loc3r_core.world.scene import Scene, Situation, situation_from_json, situation_to_json

if TYPE_CHECKING:
    from loc3r_core.world.render import RenderedFrame

PNG_COMPRESSION = 3  # zlib level: near the smallest files at a fraction of level 9's time


def frame_name(index: int) -> str:
    return f"{index:04d}.png"


class SceneWriter:
    """Writes a scene folder under a temporary name; `commit` renames it into place."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.tmp = final.parent / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        for sub in ("rgb", "depth", "instance"):
            (self.tmp / sub).mkdir(parents=True)

    def add_frame(self, index: int, frame: RenderedFrame) -> None:
        name = frame_name(index)
        Image.fromarray(frame.rgb).save(self.tmp / "rgb" / name, compress_level=PNG_COMPRESSION)
        depth_mm = np.clip(np.round(frame.depth * 1000.0), 0, 65535).astype(np.uint16)
        Image.fromarray(depth_mm).save(self.tmp / "depth" / name, compress_level=PNG_COMPRESSION)
        # 8 bits suffice: knobs cap a room at max_objects() (22) objects.
        Image.fromarray(frame.instance.astype(np.uint8)).save(self.tmp / "instance" / name,
                                                              compress_level=PNG_COMPRESSION)

    def commit(self, scene: Scene, situations: Iterable[Situation], meta: dict) -> Path:
        data = {**scene.to_json(), "meta": meta}
        (self.tmp / "scene.json").write_text(json.dumps(data, indent=1) + "\n")
        lines = [json.dumps(situation_to_json(s)) for s in situations]
        (self.tmp / "situations.jsonl").write_text("".join(line + "\n" for line in lines))
        self.tmp.replace(self.final)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def is_complete(folder: Path) -> bool:
    """A scene folder exists only once committed, so its scene.json marks it complete."""
    return (folder / "scene.json").is_file()


SceneRoots = str | Path | Sequence[str | Path]  # one dataset folder, or several read as one


def scene_folders(roots: SceneRoots, max_scenes: int | None = None) -> list[Path]:
    """The complete scene folders of one dataset folder or of several in the given order (the first
    max_scenes of them); a folder that holds none is an error, as it is most likely a wrong path."""
    roots = [roots] if isinstance(roots, str | Path) else list(roots)
    if not roots:
        raise DataError("no dataset folder given")
    if len({Path(root).resolve() for root in roots}) < len(roots):
        raise DataError(f"a dataset folder is listed twice in {', '.join(map(str, roots))}")
    folders: list[Path] = []
    for root in roots:
        found = [p for p in sorted(Path(root).glob("scene_*")) if is_complete(p)]
        if not found:
            raise DataError(f"{root} holds no complete scene folders (scene_NNNNN/scene.json)")
        folders += found
    return folders[:max_scenes] if max_scenes else folders


class SceneFolder:
    """Read access to one scene folder, with errors that say what is wrong."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"{self.path} is not a directory")
        if not is_complete(self.path):
            raise DataError(f"{self.path} is not a loc3r scene folder (no scene.json)")

    @cached_property
    def raw(self) -> dict:
        try:
            return json.loads((self.path / "scene.json").read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.path / 'scene.json'} cannot be read: {exc}") from exc

    @cached_property
    def scene(self) -> Scene:
        try:
            return Scene.from_json(self.raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{self.path / 'scene.json'} is malformed: {exc!r}") from exc

    @property
    def meta(self) -> dict:
        return self.raw.get("meta", {})

    @cached_property
    def situations(self) -> list[Situation]:
        path = self.path / "situations.jsonl"
        if not path.exists():
            return []
        try:
            return [situation_from_json(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path} is malformed: {exc!r}") from exc

    def _image(self, kind: str, index: int) -> np.ndarray:
        path = self.path / kind / frame_name(index)
        try:
            with Image.open(path) as image:
                return np.asarray(image)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} cannot be read: {exc}") from exc

    def rgb(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8."""
        return self._image("rgb", index)

    def depth(self, index: int) -> np.ndarray:
        """(H, W) float32 z-depth in metres, 0 where unknown."""
        return self._image("depth", index).astype(np.float32) / 1000.0

    def instance(self, index: int) -> np.ndarray:
        """(H, W) int64 object ids, 0 for room structure."""
        return self._image("instance", index).astype(np.int64)
