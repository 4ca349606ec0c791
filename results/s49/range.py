"""BEV error of the shipped model's per-token points by the true range from the camera, and the
signed radial error (scale): val vs val-big."""
import json, sys
from pathlib import Path
import numpy as np, torch
from loc3r_core.evaluation import evaluate as ev
from loc3r_core.model.checkpoint import load_model
from loc3r_core.world.vocabulary import STRUCTURE_CLASSES

model, tok = load_model(None if len(sys.argv) < 3 else Path(sys.argv[2]))
ds = ev.evaluation_dataset(Path(sys.argv[1]), model, 12)
first = {}
for i, (s, _, _) in enumerate(ds.items):
    first.setdefault(s, i)
idx = list(first.values())
R, E, RAD, OBJ, SIG = [], [], [], [], []
with torch.no_grad():
    for k in range(0, len(idx), 16):
        items = [ds[i] for i in idx[k:k+16]]
        batch = ev.collate(items, tok, model.config.patches_per_frame, with_answers=False)
        out = ev.predict_batch(model, tok, ev.model_inputs(batch, use_prior=True), batch["lengths"])
        t = {kk: v.numpy() for kk, v in batch["targets"].items()}
        cam = t["ego_pose"][..., None, :2]  # (B, F, 1, 2)
        tgt, pred, valid = t["bev_target"], out["bev"], t["bev_valid"]
        rng = np.linalg.norm(tgt - cam, axis=-1)
        prng = np.linalg.norm(pred - cam, axis=-1)
        R.append(rng[valid]); E.append(np.linalg.norm(pred - tgt, axis=-1)[valid]); RAD.append((prng / np.maximum(rng, 1e-3))[valid])
        OBJ.append((t["patch_label"] >= len(STRUCTURE_CLASSES))[valid])
R, E, RAD, OBJ = map(np.concatenate, (R, E, RAD, OBJ))
rows = {}
for lo, hi in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 7), (7, 12)]:
    m = (R >= lo) & (R < hi)
    if m.sum() < 20: continue
    mo = m & OBJ
    rows[f"{lo}-{hi}m"] = dict(share=round(100 * m.mean(), 1), err=round(float(np.median(E[m])), 3),
                             obj_err=round(float(np.median(E[mo])), 3) if mo.sum() > 10 else None,
                             range_ratio=round(float(np.median(RAD[m])), 3))
print(json.dumps(rows))
