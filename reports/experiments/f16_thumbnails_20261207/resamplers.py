"""Whole real photographs of the training sources shrunk by three resamplers (area, bilinear
and nearest, as cv2 does them, the last two without low-pass filtering), for the batch job:
does the served visual detector read a cheap resampler's aliasing as synthesis?

    python reports/experiments/f16_thumbnails_20261207/resamplers.py OUT [--cache data/sources]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from training.sources import BY_NAME, media_files

UPLOADED = "2026-11-02T12:00:00Z"
RESAMPLERS = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--cache", default="data/sources")
    args = parser.parse_args()
    out = Path(args.out)
    (out / "media").mkdir(parents=True, exist_ok=True)
    photos = [p for n in ("people_photos", "scene_photos") for p in media_files(BY_NAME[n], args.cache)
              if p.suffix.lower() in (".jpg", ".jpeg", ".png")]  # fmt: skip
    chosen = sorted(np.random.default_rng(0).choice(len(photos), 24, replace=False))
    events, labels = [], []
    for i, photo in enumerate(photos[k] for k in chosen):
        frame = np.asarray(Image.open(photo).convert("RGB"))
        height, width = frame.shape[:2]
        scale = min(1.0, 720 / max(height, width)) * 0.6
        size = (max(16, round(width * scale)), max(16, round(height * scale)))
        for name, interpolation in RESAMPLERS.items():
            cid = f"photo-{i:03d}-{name}"
            Image.fromarray(cv2.resize(frame, size, interpolation=interpolation)).save(out / "media" / f"{cid}.jpg",
                                                                                        quality=85)  # fmt: skip
            events.append({"content_id": cid, "media_uri": f"media/{cid}.jpg", "account_id": f"acct-{cid}",
                           "uploaded_at": UPLOADED})  # fmt: skip
            labels.append({"content_id": cid, "label": "real", "source": name, "media_type": "image",
                           "visual_label": 0, "metadata_label": 0})  # fmt: skip
    (out / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (out / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labels))
    print(f"{len(events)} pictures")


if __name__ == "__main__":
    main()
