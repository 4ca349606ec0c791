"""Where object recall is lost: swap predicted labels / points for the true ones per token."""
import json, sys
from pathlib import Path
import numpy as np
from loc3r_core.evaluation import evaluate as ev, objects as ob
from loc3r_core.model.checkpoint import load_model

variants = {k: ob.ObjectAccumulator() for k in ("pred", "true_points", "true_labels", "true_both")}
extra = {"missed_no_class_token": 0, "missed_far": [], "missed": 0, "seen": 0, "missed_true_label_absent": 0}
orig = ob.ObjectAccumulator.add_clip

def add_clip(self, points, labels, objects, seen_ids, bev_target, bev_valid, true_labels):
    orig(self, points, labels, objects, seen_ids, bev_target, bev_valid, true_labels)
    if self is not ACC[0]:
        return
    tp = np.where(bev_valid[..., None], bev_target, points)
    tl = np.where(bev_valid, true_labels, labels)
    for name, (p, l) in {"pred": (points, labels), "true_points": (tp, labels), "true_labels": (points, tl),
                         "true_both": (tp, tl)}.items():
        orig(variants[name], p, l, objects, seen_ids, bev_target, bev_valid, true_labels)
    fp, fl = points.reshape(-1, 2), labels.reshape(-1)
    d = ob.footprint_distances(fp, objects)
    seen = set(seen_ids)
    for j, o in enumerate(objects):
        if o["id"] not in seen: continue
        extra["seen"] += 1
        same = fl == o["class"]
        if (same & (d[:, j] <= 0.5)).any(): continue
        extra["missed"] += 1
        if not same.any(): extra["missed_no_class_token"] += 1
        else: extra["missed_far"].append(float(d[same, j].min()))
        if not (true_labels.reshape(-1) == o["class"]).any(): extra["missed_true_label_absent"] += 1

ACC = []
class Spy(ob.ObjectAccumulator):
    def __init__(self):
        super().__init__(); 
        if not ACC: ACC.append(self)
Spy.add_clip = add_clip
ev.ObjectAccumulator = Spy
model, tok = load_model(None) if len(sys.argv) < 3 else load_model(Path(sys.argv[2]))
ds = ev.evaluation_dataset(Path(sys.argv[1]), model, 12)
res = ev.evaluate(model, tok, ds, 1000, 32, "odometry", progress=False)
out = {k: {kk: v.summary()[kk] for kk in ("object_recall", "object_point_precision", "object_recall_by_class")} for k, v in variants.items()}
far = np.array(extra["missed_far"])
out["missed"] = {k: extra[k] for k in ("seen", "missed", "missed_no_class_token", "missed_true_label_absent")}
out["missed"]["far_quantiles"] = np.quantile(far, [0.25, 0.5, 0.75]).round(2).tolist() if far.size else []
out["missed"]["far_count"] = int(far.size)
print(json.dumps(out, indent=1))
