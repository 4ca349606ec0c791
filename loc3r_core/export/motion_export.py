"""Export the visual odometry network (model.motion) to ONNX, beside its weights.

The runtime reads camera steps through ONNX Runtime alone (runtime.visual_odometry), so a robot
without PyTorch gets them too. motion.onnx takes two batches of frames in [0, 1] and gives the
steps in metres and radians (and, for a network that reads it, the room heading's reading after
them); motion_onnx.json records the hashes of the weights it came from and
of itself, so a retrained network with a stale export is refused rather than silently run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from loc3r_core.export.onnx_export import GraphIO, export_graph
from loc3r_core.model.motion import SHIPPED_MOTION, WEIGHTS_FILE, load_motion
from loc3r_core.runtime.spec import file_sha256
from loc3r_core.runtime.visual_odometry import MOTION_MANIFEST, MOTION_ONNX, StepReader

MOTION_IO = GraphIO(("previous", "current"), ("reading",), {"previous": {0: "pairs"}, "current": {0: "pairs"}})


def export_motion(folder: Path | None = None) -> dict:
    """Write motion.onnx and motion_onnx.json into the network's folder; returns the manifest."""
    folder = SHIPPED_MOTION if folder is None else Path(folder)
    model = load_motion(folder)
    size = model.config.image_size
    examples = (torch.rand(3, 3, size, size), torch.rand(3, 3, size, size))
    export_graph(model, examples, MOTION_IO, folder / MOTION_ONNX)
    manifest = {"weights_sha256": file_sha256(folder / WEIGHTS_FILE), "onnx_sha256": file_sha256(folder / MOTION_ONNX),
                "torch": torch.__version__}
    (folder / MOTION_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def motion_parity(folder: Path | None = None, seed: int = 0) -> float:
    """Max |onnx - torch| of the readings (steps and room heading) from random frame pairs."""
    model = load_motion(folder)
    reader = StepReader(folder)
    size = model.config.image_size
    frames = np.random.default_rng(seed).random((2, 4, 3, size, size), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(frames[0]), torch.from_numpy(frames[1])).numpy()
    return float(np.abs(reader.readings(frames[0], frames[1]) - expected).max())
