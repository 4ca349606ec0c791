"""Token-level: at tokens whose objects_first target is an object class, what does the model predict?"""
import json, sys
from pathlib import Path
import numpy as np, torch
from loc3r_core.evaluation import evaluate as ev
from loc3r_core.data.dataset import SceneClipDataset
from loc3r_core.model.checkpoint import load_model
from loc3r_core.world.vocabulary import PATCH_CLASSES, STRUCTURE_CLASSES

model, tok = load_model(None if len(sys.argv) < 3 else Path(sys.argv[2]))
v = model.config.vision_config
ds = SceneClipDataset(Path(sys.argv[1]), num_frames=12, patch_grid=model.config.patch_grid, image_size=v.image_size,
                      sampling="uniform", pseudo_situation_share=0.0, patch_target="objects_first",
                      map_subdivision=model.config.map_subdivision)
first = {}
for i, (s, _, _) in enumerate(ds.items):
    first.setdefault(s, i)
idx = list(first.values())
S = len(STRUCTURE_CLASSES)
C = len(PATCH_CLASSES)
conf = np.zeros((C, C), int)
with torch.no_grad():
    for k in range(0, len(idx), 16):
        items = [ds[i] for i in idx[k:k+16]]
        batch = ev.collate(items, tok, model.config.patches_per_frame, with_answers=False)
        out = ev.predict_batch(model, tok, {kk: vv for kk, vv in ev.model_inputs(batch, use_prior=True).items()}, batch["lengths"])
        t = batch["targets"]["patch_label"].numpy().reshape(-1)
        p = out["labels"].reshape(-1)
        m = t >= 0
        np.add.at(conf, (t[m], p[m]), 1)
rows = {}
for c in range(S, C):
    n = conf[c].sum()
    if not n: continue
    rows[PATCH_CLASSES[c]] = dict(n=int(n), right=round(100*conf[c, c]/n, 1), as_structure=round(100*conf[c, :S].sum()/n, 1),
                                  as_other_object=round(100*(conf[c, S:].sum()-conf[c, c])/n, 1))
tot = conf[S:].sum(); 
rows["ALL"] = dict(n=int(tot), right=round(100*np.trace(conf[S:, S:])/tot, 1), as_structure=round(100*conf[S:, :S].sum()/tot, 1))
print(json.dumps(rows))
