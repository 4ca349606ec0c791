"""At the tokens whose training target (objects_first) is an object: the share the model labels
right, as structure (floor, wall, ceiling) or as another object, per class.

    python results/s49/confusion.py data/val-big
"""

import json
import sys
from pathlib import Path

import numpy as np
from probe_clips import clip_outputs

from loc3r_core.world.vocabulary import PATCH_CLASSES, STRUCTURE_CLASSES

structure, classes = len(STRUCTURE_CLASSES), len(PATCH_CLASSES)
confusion = np.zeros((classes, classes), dtype=np.int64)
for out, targets, _ in clip_outputs(Path(sys.argv[1])):
    truth, predicted = targets["patch_label"].reshape(-1), out["labels"].reshape(-1)
    known = truth >= 0
    np.add.at(confusion, (truth[known], predicted[known]), 1)


def shares(rows: np.ndarray, right: int) -> dict:
    total = rows.sum()
    return {"tokens": int(total), "right": round(100 * right / total, 1),
            "as_structure": round(100 * rows[..., :structure].sum() / total, 1),
            "as_other_object": round(100 * (rows[..., structure:].sum() - right) / total, 1)}


result = {PATCH_CLASSES[c]: shares(confusion[c], confusion[c, c])
          for c in range(structure, classes) if confusion[c].sum()}
result["all objects"] = shares(confusion[structure:], int(np.trace(confusion[structure:, structure:])))
print(json.dumps(result))
