"""Child process of `loc3r bench`: the ONNX backend alone (no torch import), its peak memory.

python -m loc3r_core.runtime.bench_probe SCENE_DIR SIZES [EXPORT_DIR] -> {"peak_rss_mb": ...}
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from loc3r_core.runtime.bench import bench_backend
    from loc3r_core.runtime.onnx_backend import OnnxBackend
    from loc3r_core.world.scene_io import SceneFolder

    scene, sizes = Path(argv[0]), [int(s) for s in argv[1].split(",")]
    backend = OnnxBackend(Path(argv[2]) if len(argv) > 2 else None)
    bench_backend(backend, SceneFolder(scene), sizes, repeats=5, questions=5)
    if "torch" in sys.modules:
        print("torch was imported on the ONNX-only path", file=sys.stderr)
        return 1
    print(json.dumps({"peak_rss_mb": round(peak_rss_kb() / 1024, 1)}))
    return 0


def peak_rss_kb() -> int:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    execve, so a child of the (torch-laden) benchmark would report its parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
