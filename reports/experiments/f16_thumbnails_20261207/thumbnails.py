"""Real face thumbnails made from the training sources' photographs, as a platform crops a
profile picture: the largest face, a square 2.2 face-widths wide around it, shrunk to SIZE px
and saved as JPEG. Writes OUT/manifest.jsonl and labels.jsonl for the batch job.

    python reports/experiments/f16_thumbnails_20261207/thumbnails.py --out DIR \
        [--cache data/sources] [--source face_photos people_photos] [--size 96 150 250]

Training sources only: the held-out real sources are never read here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from training.sources import BY_NAME, media_files
from transforms.visual import detect_face

UPLOADED = "2026-11-02T12:00:00Z"


def thumbnail(photo: Path, size: int, aligned: float | None = None) -> Image.Image | None:
    """`aligned`: sample the square straight at SIZE px by an affine map turned by that many
    degrees, bilinear and without low-pass filtering first (how face-chip extractors align a
    face), instead of cropping and shrinking with a Lanczos filter."""
    frame = np.asarray(Image.open(photo).convert("RGB"))
    box = detect_face(frame)
    if box is None:
        return None
    x, y, w, h = box
    side = int(2.2 * max(w, h))
    cx, cy = x + w // 2, y + h // 2
    top, left = max(cy - side // 2, 0), max(cx - side // 2, 0)
    crop = frame[top : top + side, left : left + side]
    if min(crop.shape[:2]) < 0.8 * side:  # the face at the edge: not a square crop
        return None
    if aligned is None:
        return Image.fromarray(crop).resize((size, size), Image.LANCZOS)
    side = int(1.6 * max(w, h))  # a chip is framed tighter: the face fills most of it
    turn, scale = np.deg2rad(aligned), side / size
    a, b = scale * np.cos(turn), -scale * np.sin(turn)
    # output (u, v) -> input (a u + b v + c, -b u + a v + f), centred on the face
    c = cx - (a * size / 2 + b * size / 2)
    f = cy - (-b * size / 2 + a * size / 2)
    corners = [(a * u + b * v + c, -b * u + a * v + f) for u in (0, size) for v in (0, size)]
    if not all(0 <= px < frame.shape[1] and 0 <= py < frame.shape[0] for px, py in corners):
        return None  # the turned square leaves the photograph: no black corners
    return Image.fromarray(frame).transform((size, size), Image.AFFINE, (a, b, c, -b, a, f), Image.BILINEAR)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--cache", default="data/sources")
    parser.add_argument("--source", nargs="+", default=["face_photos", "people_photos"])
    parser.add_argument("--size", nargs="+", type=int, default=[96, 150, 250])
    parser.add_argument(
        "--aligned",
        nargs="+",
        type=float,
        default=[],
        help="Also chips sampled by an affine map turned by these angles (degrees).",
    )
    args = parser.parse_args()
    out = Path(args.out)
    (out / "media").mkdir(parents=True, exist_ok=True)
    events, labels, skipped = [], [], 0
    for name in args.source:
        for i, photo in enumerate(media_files(BY_NAME[name], args.cache)):
            if photo.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            for size, angle in [(s, None) for s in args.size] + [(150, a) for a in args.aligned]:
                picture = thumbnail(photo, size, angle)
                if picture is None:
                    skipped += 1
                    continue
                tag = f"{size}px" if angle is None else f"chip_turned_{angle:.0f}deg".replace("-", "minus_")
                cid = f"{name}-{i:03d}-{tag}"
                path = out / "media" / f"{cid}.jpg"
                picture.save(path, quality=80)
                events.append({"content_id": cid, "media_uri": f"media/{path.name}", "account_id": f"acct-{cid}",
                               "uploaded_at": UPLOADED})  # fmt: skip
                labels.append({"content_id": cid, "label": "real", "source": f"{name}@{tag}",
                               "media_type": "image", "visual_label": 0, "metadata_label": 0})  # fmt: skip
    (out / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (out / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labels))
    print(f"{len(events)} thumbnails, {skipped} skipped (no face found, or the face at the edge)")


if __name__ == "__main__":
    main()
