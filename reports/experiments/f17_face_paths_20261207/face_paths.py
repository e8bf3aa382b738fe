"""The f12 pixel probe with faces first, honest splits, three seeds and thresholds per path.

Configuration fixed before any figure was read (README.md here):
- stills of the training source corpora, split by split group (`training.splits.item_split`,
  seed 7): train fits, validation sets the thresholds, test reports;
- the f11/f12 probe's network and light augmentation (`patch_probe.py`, unchanged), 3 epochs;
  12 patches per training upload, half of them from inside the largest face when the job's
  face detector finds one at least 64 px wide, the rest from anywhere in the picture;
- an upload's logit: the mean over 32 patches from inside its face when it has one, else from
  anywhere; two trainings (seeds 0, 1) and their mean;
- thresholds per path (face / no face), each from the validation split's real uploads of that
  path alone: review at the 99th percentile, removal above the highest; the same from all
  validation reals together, for comparison.
The visual held-out set is only measured (stills: MobileStyleGAN against the real photographs
of people and face chips). An experiment, not served code.

    python reports/experiments/f17_face_paths_20261207/face_paths.py --sources data/model-report/sources \
        --heldout data/h28/heldout_visual --out data/f17
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from training.splits import item_split
from transforms.visual import detect_face

REAL = (
    "people_photos",
    "face_photos",
    "scene_photos",
    "library_photos",
    "wallpaper_photos",
    "opencv_photos",
    "skimage",
)
SYNTHETIC = ("gan_redraw", "cyclegan", "autoencoder_transposed", "autoencoder_nearest", "autoencoder_bilinear",
             "autoencoder_shuffle")  # fmt: skip
SEEDS = (0, 1)
_probe_path = Path(__file__).parents[1] / "f11_visual_20261206" / "patch_probe.py"
_spec = importlib.util.spec_from_file_location("patch_probe", _probe_path)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)
PATCH = probe.PATCH


def stills(corpus: str) -> list[dict]:
    with open(os.path.join(corpus, "labels.jsonl")) as handle:
        labels = {row["content_id"]: row for row in map(json.loads, handle)}
    with open(os.path.join(corpus, "manifest.jsonl")) as handle:
        rows = [json.loads(line) for line in handle]
    out = []
    for row in rows:
        label = labels[row["content_id"]]
        if label["media_type"] == "image":
            out.append({"path": os.path.join(corpus, row["media_uri"]), "label": int(label["label"] == "synthetic"),
                        "source": label["source"], "split": item_split(label, 7)})  # fmt: skip
    return out


def face_window(pixels: np.ndarray) -> np.ndarray | None:
    """The largest face's box, widened by a fifth, when it is at least a patch wide."""
    box = detect_face(pixels)
    if box is None or min(box[2], box[3]) < PATCH:
        return None
    x, y, w, h = box
    dx, dy = w // 10, h // 10
    top, left = max(y - dy, 0), max(x - dx, 0)
    window = pixels[top : y + h + dy, left : x + w + dx]
    return window if min(window.shape[:2]) >= PATCH else None


def draw(item: dict, count: int, augment: str, rng: np.random.Generator, face_share: float):
    """(patches, has_face): `face_share` of the patches from the face window when there is one."""
    pixels = np.asarray(Image.open(item["path"]).convert("RGB"))
    if min(pixels.shape[:2]) < PATCH:
        return None, False
    face = face_window(pixels)
    parts = []
    from_face = round(count * face_share) if face is not None else 0
    for source, n in ((face, from_face), (pixels, count - from_face)):
        if n:
            parts.append(probe.patches_of(source, n, augment, rng))
    return np.concatenate(parts), face is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", required=True)
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import tensorflow as tf

    items = [i for name in (*REAL, *SYNTHETIC) for i in stills(os.path.join(args.sources, name))]
    for item in stills(args.heldout):
        items.append({**item, "split": "heldout"})
    rng = np.random.default_rng(0)
    scoring = {}
    for index, item in enumerate(items):  # the patches every model scores, drawn once
        if item["split"] != "train":
            drawn, has_face = draw(item, 32, "none", rng, 1.0)
            if drawn is not None:
                scoring[index] = (drawn, has_face)
    logits = {index: [] for index in scoring}
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        tf.keras.utils.set_random_seed(seed)
        x, y = [], []
        for item in items:
            if item["split"] == "train":
                drawn, _ = draw(item, 12, "light", rng, 0.5)
                if drawn is not None:
                    x.append(drawn)
                    y += [item["label"]] * len(drawn)
        network = probe.build_network(strided=False)
        network.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.BinaryCrossentropy(from_logits=True))
        network.fit(np.concatenate(x), np.array(y), batch_size=128, epochs=3, shuffle=True, verbose=2)
        for index, (drawn, _) in scoring.items():
            logits[index].append(float(np.mean(network.predict(drawn, verbose=0))))
    rows = [{**items[i], "has_face": scoring[i][1], "logits": logits[i], "logit": float(np.mean(logits[i]))}
            for i in scoring]  # fmt: skip
    with open(os.path.join(args.out, "scores.jsonl"), "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    print(json.dumps(figures(rows), indent=1))
    with open(os.path.join(args.out, "figures.json"), "w") as handle:
        json.dump(figures(rows), handle, indent=1)


def _auc(rows: list[dict], key) -> float | None:
    labels = [r["label"] for r in rows]
    return round(float(roc_auc_score(labels, [key(r) for r in rows])), 3) if 0 < sum(labels) < len(labels) else None


def _percentiles(values: list[float]) -> list[float]:
    return np.percentile(values, [10, 50, 90]).round(2).tolist()


def _thresholds(reals: list[float]) -> dict:
    return {"review": float(np.quantile(reals, 0.99, method="higher")), "remove": float(max(reals)) + 1e-6,
            "reals": len(reals)}  # fmt: skip


def figures(rows: list[dict]) -> dict:
    out = {}
    for split in ("validation", "test", "heldout"):
        part = [r for r in rows if r["split"] == split]
        sources = sorted({r["source"] for r in part})
        out[split] = {
            "items": len(part),
            "auc_ensemble": _auc(part, lambda r: r["logit"]),
            "auc_by_seed": [_auc(part, lambda r, s=s: r["logits"][s]) for s in range(len(SEEDS))],
            "auc_face_path": _auc([r for r in part if r["has_face"]], lambda r: r["logit"]),
            "logit_p10_p50_p90": {s: _percentiles([r["logit"] for r in part if r["source"] == s]) for s in sources},
            "with_face": {s: sum(r["has_face"] for r in part if r["source"] == s) for s in sources},
        }
    reals = [r for r in rows if r["split"] == "validation" and r["label"] == 0]
    paths = {
        "per_path": {face: _thresholds([r["logit"] for r in reals if r["has_face"] == face]) for face in (True, False)},
        "together": {face: _thresholds([r["logit"] for r in reals]) for face in (True, False)},
    }
    for name, chosen in paths.items():
        acted = {}
        for r in rows:
            if r["split"] not in ("test", "heldout"):
                continue
            t = chosen[r["has_face"]]
            key = f"{r['split']}:{r['source']}"
            counts = acted.setdefault(key, {"items": 0, "review_or_removal": 0, "removal": 0})
            counts["items"] += 1
            counts["review_or_removal"] += int(r["logit"] >= t["review"])
            counts["removal"] += int(r["logit"] >= t["remove"])
        out[f"thresholds_{name}"] = {str(k): v for k, v in chosen.items()}
        out[f"acted_on_{name}"] = acted
    return out


if __name__ == "__main__":
    main()
