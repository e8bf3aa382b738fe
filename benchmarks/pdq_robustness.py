"""How robust the bank's PDQ matching is (`transforms.hashbank`), on real photographs: every
photograph of the training sources is banked as the jobs hash it, then each is queried after
what a re-upload does to it, and every photograph against the others for false links.

    python -m benchmarks.pdq_robustness [--cache data/sources] [--limit 400]

Needs `make sources`. Prints one line per change: matched to its original, matched to another
photograph, missed. Frames of one film or burst (near-duplicates) count as the same picture
only when they are the same file; a link between two of them is reported as "another".
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

from training.sources import training_photographs
from transforms.hashbank import HashBank
from transforms.limits import MediaLimits
from transforms.visual import extract_visual


def _saved(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _cropped(image: Image.Image, share: float) -> Image.Image:
    dx, dy = int(image.width * share), int(image.height * share)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


# What a re-upload does to a photograph, by name: the bytes the platform receives.
CHANGES = {
    "JPEG quality 40": lambda im: _saved(im, "JPEG", quality=40),
    "half size, JPEG 70": lambda im: _saved(im.resize((im.width // 2, im.height // 2)), "JPEG", quality=70),
    "WebP quality 50": lambda im: _saved(im, "WEBP", quality=50),
    "cropped 5% each side": lambda im: _saved(_cropped(im, 0.05), "JPEG", quality=85),
    "brighter x1.3, more contrast x1.2": lambda im: _saved(
        ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.3)).enhance(1.2), "JPEG", quality=85
    ),
    "mirrored": lambda im: _saved(ImageOps.mirror(im), "JPEG", quality=85),
}


def _hashes(data: bytes) -> tuple[str, ...]:
    visual = extract_visual(data, "image", MediaLimits())
    return visual.pdq_hashes if visual is not None else ()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default="data/sources")
    parser.add_argument("--limit", type=int, default=400, help="Photographs banked at most.")
    args = parser.parse_args(argv)
    photos = training_photographs(args.cache)[: args.limit]
    pictures = {}
    for path in photos:
        with Image.open(path) as image:
            picture = image.convert("RGB")
        picture.thumbnail((1600, 1600))  # what a platform keeps of a large upload
        pictures[str(path)] = picture
    started = time.perf_counter()
    banked = {name: _hashes(_saved(picture, "PNG")) for name, picture in pictures.items()}
    per_picture_ms = 1000 * (time.perf_counter() - started) / len(banked)
    names = [name for name, hashes in banked.items() if hashes]

    def bank_of(chosen: list[str]) -> HashBank:  # every hash the jobs keep of each (its variants too)
        return HashBank(tuple(h for n in chosen for h in banked[n]), tuple(n for n in chosen for _ in banked[n]))

    bank = bank_of(names)
    links = []
    for index, name in enumerate(names):  # each against a bank of all the others
        rest = names[:index] + names[index + 1 :]
        found, distance = bank_of(rest).match(banked[name])
        if found is not None:
            links.append(f"{Path(name).name}~{Path(found).name} ({distance})")
    print(f"banked {len(names)} photographs ({len(banked) - len(names)} too flat to hash; {per_picture_ms:.0f} ms "
          f"a photograph decoded and hashed); each against the others: {len(links)} linked: {', '.join(links)}")  # fmt: skip
    print("changes: matched to the original / to another / missed")
    for change, apply in CHANGES.items():
        outcomes = [bank.match(_hashes(apply(pictures[name])))[0] for name in names]
        matched = sum(found == name for found, name in zip(outcomes, names))
        other = sum(found not in (None, name) for found, name in zip(outcomes, names))
        print(f"  {change:<36} {matched:>4} / {other} / {len(names) - matched - other}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
