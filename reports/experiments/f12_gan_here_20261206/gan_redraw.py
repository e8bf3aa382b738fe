"""Re-draws a corpus's real still uploads with the GAN trained here (`training.gan_redraw`), into
a corpus the pixel probe reads (`gan_here` items). An experiment, not served code.

The network and its training moved to `training/gan_redraw.py` after this experiment (the run
recorded in README.md used the same architecture and training, saved under other layer names):

    python -m training.image_synthesis train --cache data/sources
    python reports/experiments/f12_gan_here_20261206/gan_redraw.py --cache data/sources \
        --corpus data/mr28/sources_a --out data/f12/gan_corpus --limit 400
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))

from training import gan_redraw


def redraw(args) -> None:
    generator = gan_redraw.load(args.cache)
    with open(os.path.join(args.corpus, "labels.jsonl")) as handle:
        labels = {row["content_id"]: row for row in map(json.loads, handle)}
    with open(os.path.join(args.corpus, "manifest.jsonl")) as handle:
        rows = [json.loads(line) for line in handle]
    stills = [r for r in rows if labels[r["content_id"]]["media_type"] == "image"
              and labels[r["content_id"]]["label"] == "real"]  # fmt: skip
    random.Random(args.seed).shuffle(stills)
    rng = np.random.default_rng(args.seed)
    media = os.path.join(args.out, "media")
    os.makedirs(media, exist_ok=True)
    out_labels, out_manifest = [], []
    started = time.perf_counter()
    for index, row in enumerate(stills[: args.limit]):
        with Image.open(os.path.join(args.corpus, row["media_uri"])) as image:
            picture = np.asarray(image.convert("RGB"))
        height, width = (s - s % 4 for s in picture.shape[:2])
        if min(height, width) < 64:
            continue
        result = Image.fromarray(gan_redraw.redraw(generator, picture))
        # the platform chain after the generator: sometimes shrunk, saved as JPEG or PNG
        if rng.random() < 0.4:
            scale = float(rng.uniform(0.5, 0.9))
            result = result.resize((max(64, int(width * scale)), max(64, int(height * scale))), Image.LANCZOS)
        content_id = f"gan_here-{index:05d}"
        if rng.random() < 0.7:
            name = f"{content_id}.jpg"
            buffer = io.BytesIO()
            result.save(buffer, "JPEG", quality=int(rng.integers(70, 96)))
            data = buffer.getvalue()
        else:
            name = f"{content_id}.png"
            buffer = io.BytesIO()
            result.save(buffer, "PNG")
            data = buffer.getvalue()
        with open(os.path.join(media, name), "wb") as handle:
            handle.write(data)
        out_labels.append({"content_id": content_id, "label": "synthetic", "source": "gan_here",
                           "media_type": "image", "redrawn_from": row["content_id"]})  # fmt: skip
        out_manifest.append({"content_id": content_id, "media_uri": f"media/{name}"})
        if index % 50 == 0:
            print(f"{index} redrawn in {time.perf_counter() - started:.0f}s", flush=True)
    for name, rows_out in (("labels.jsonl", out_labels), ("manifest.jsonl", out_manifest)):
        with open(os.path.join(args.out, name), "w") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in rows_out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="data/sources")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int, default=400)
    parser.add_argument("--seed", type=int, default=3)
    redraw(parser.parse_args())


if __name__ == "__main__":
    main()
