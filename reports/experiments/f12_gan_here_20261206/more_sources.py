"""Two more training sources for the visual probe, as corpora the probe reads.

* `people`: real camera photographs of people at their own resolution (Debian `kphotoalbum`
  5.9.1-1's demo pictures, GPL-2+; PyPI `facetorch` 0.6.2's `data/input` photographs), each kept as
  shipped, once processed as the web processes a picture (shrunk, sharpened, re-compressed) and
  once cropped at native resolution.
* `cyclegan`: PyPI `vintagify` 0.1.2's CycleGAN generator (MIT; a ResNet generator with
  transposed-convolution upsampling, trained adversarially) re-rendering the training sources'
  real still uploads, through ONNX Runtime (its generator exported once from the wheel's .pth).

    python more_sources.py people --photos DIR [DIR ...] --out data/f12/people
    python more_sources.py cyclegan --onnx vintagify_G.onnx --corpus data/mr28/sources_a \
        --out data/f12/cyclegan --limit 120
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import random
import time

import numpy as np
from PIL import Image, ImageFilter


def _save(image: Image.Image, out: str, content_id: str, rng: np.random.Generator) -> str:
    jpeg = rng.random() < 0.75
    name = f"{content_id}.{'jpg' if jpeg else 'png'}"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(70, 96))) if jpeg else image.save(buffer, "PNG")
    with open(os.path.join(out, "media", name), "wb") as handle:
        handle.write(buffer.getvalue())
    return f"media/{name}"


def _write(out: str, rows: list[tuple[str, str, str, str]]) -> None:
    with open(os.path.join(out, "labels.jsonl"), "w") as labels, open(os.path.join(out, "manifest.jsonl"), "w") as man:
        for content_id, uri, label, source in rows:
            labels.write(json.dumps({"content_id": content_id, "label": label, "source": source,
                                     "media_type": "image"}) + "\n")  # fmt: skip
            man.write(json.dumps({"content_id": content_id, "media_uri": uri}) + "\n")


def people(args) -> None:
    rng = np.random.default_rng(5)
    os.makedirs(os.path.join(args.out, "media"), exist_ok=True)
    rows = []
    paths = sorted(p for d in args.photos for p in glob.glob(os.path.join(d, "*.jp*g")) if "logo" not in p)
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            picture = image.convert("RGB")
        content_id = f"people-{index:03d}"
        with open(path, "rb") as handle:
            name = f"{content_id}-as-shipped.jpg"
            with open(os.path.join(args.out, "media", name), "wb") as copy:
                copy.write(handle.read())
        rows.append((f"{content_id}-as-shipped", f"media/{name}", "real", "people"))
        scale = float(rng.uniform(0.35, 0.75))
        web = picture.resize((int(picture.width * scale), int(picture.height * scale)), Image.LANCZOS)
        web = web.filter(
            ImageFilter.UnsharpMask(radius=float(rng.uniform(0.8, 2.0)), percent=int(rng.integers(50, 150)))
        )
        rows.append((f"{content_id}-web", _save(web, args.out, f"{content_id}-web", rng), "real", "people"))
        side = min((*picture.size, 512))
        left, top = int(rng.integers(0, picture.width - side + 1)), int(rng.integers(0, picture.height - side + 1))
        crop = picture.crop((left, top, left + side, top + side))
        rows.append((f"{content_id}-crop", _save(crop, args.out, f"{content_id}-crop", rng), "real", "people"))
    _write(args.out, rows)
    print(f"{len(rows)} people items from {len(paths)} photographs")


def cyclegan(args) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    with open(os.path.join(args.corpus, "labels.jsonl")) as handle:
        labels = {row["content_id"]: row for row in map(json.loads, handle)}
    with open(os.path.join(args.corpus, "manifest.jsonl")) as handle:
        stills = [r for r in map(json.loads, handle) if labels[r["content_id"]]["media_type"] == "image"
                  and labels[r["content_id"]]["label"] == "real"]  # fmt: skip
    random.Random(4).shuffle(stills)
    rng = np.random.default_rng(4)
    os.makedirs(os.path.join(args.out, "media"), exist_ok=True)
    rows, started = [], time.perf_counter()
    for index, row in enumerate(stills[: args.limit]):
        with Image.open(os.path.join(args.corpus, row["media_uri"])) as image:
            picture = image.convert("RGB")
        if max(picture.size) > args.max_side:
            scale = args.max_side / max(picture.size)
            picture = picture.resize((int(picture.width * scale), int(picture.height * scale)), Image.LANCZOS)
        width, height = picture.width - picture.width % 4, picture.height - picture.height % 4
        if min(width, height) < 64:
            continue
        x = np.asarray(picture)[:height, :width].astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
        y = session.run(None, {name: x})[0][0].transpose(1, 2, 0)
        result = Image.fromarray(np.clip((y + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8))
        content_id = f"cyclegan-{index:05d}"
        rows.append((content_id, _save(result, args.out, content_id, rng), "synthetic", "cyclegan"))
        if index % 20 == 0:
            print(f"{index} rendered in {time.perf_counter() - started:.0f}s", flush=True)
    _write(args.out, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("people")
    p.add_argument("--photos", nargs="+", required=True)
    p.add_argument("--out", required=True)
    c = commands.add_parser("cyclegan")
    c.add_argument("--onnx", required=True)
    c.add_argument("--corpus", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--limit", type=int, default=120)
    c.add_argument("--max-side", type=int, default=768)
    args = parser.parse_args()
    (people if args.command == "people" else cyclegan)(args)


if __name__ == "__main__":
    main()
