"""What matching an upload against a bank of a million PDQ entries costs
(`transforms.hashbank`: faiss's multi-index hashing), beside a scan of the same bank.

Real photographs of the training sources are banked, then queried re-encoded (smaller, JPEG
quality 60: they must match) beside as many real photographs that were never banked (they
must not); the rest of the bank is random 256-bit hashes up to `--entries`. Random filler is
the kind case for an index (real hashes crowd some buckets more), so the photographs' own
queries are reported apart.

    python -m benchmarks.bank_index [--entries 1000000] [--photos 120] [--cache data/sources]

Needs `make sources` (the photographs).
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import time

import numpy as np
from PIL import Image

from training.sources import training_photographs
from transforms.hashbank import HashBank, pdq_hash

FRAMES_PER_UPLOAD = 8  # a video's sampled frames: the hashes one upload queries with


def _rgb(data: bytes, side: int = 1024) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        picture = image.convert("RGB")
    picture.thumbnail((side, side))
    return np.asarray(picture)


def _reencoded(picture: np.ndarray) -> np.ndarray:
    image = Image.fromarray(picture)
    image = image.resize((image.width * 4 // 5, image.height * 4 // 5))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=60)
    return _rgb(buffer.getvalue())


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _scan(bank: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The closest entry of each query by a full scan (byte-wise popcount table)."""
    popcount = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint16)
    return np.array([popcount[np.bitwise_xor(bank, query)].sum(axis=1).min() for query in queries])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--photos", type=int, default=120, help="Photographs banked, and as many not banked.")
    parser.add_argument("--cache", default="data/sources")
    args = parser.parse_args(argv)
    photos = training_photographs(args.cache)
    if len(photos) < 2 * args.photos:
        parser.error(f"{len(photos)} photographs under {args.cache} (make sources), {2 * args.photos} needed")
    chosen = [photos[i] for i in np.random.default_rng(0).permutation(len(photos))[: 2 * args.photos]]
    pictures = [_rgb(path.read_bytes()) for path in chosen]
    banked, unbanked = pictures[: args.photos], pictures[args.photos :]
    banked_hashes = [pdq_hash(p)[0] for p in banked]
    repost_hashes = [pdq_hash(_reencoded(p))[0] for p in banked]
    other_hashes = [pdq_hash(p)[0] for p in unbanked]
    filler = np.random.default_rng(1).integers(0, 256, (args.entries - len(banked_hashes), 32), dtype=np.uint8)
    hashes = (*banked_hashes, *(row.tobytes().hex() for row in filler))
    labels = (*(f"photo-{i}" for i in range(len(banked_hashes))), *("filler",) * len(filler))
    before = _rss_mib()
    started = time.perf_counter()
    bank = HashBank(hashes, labels)
    bank.match((banked_hashes[0],))  # builds the index
    built_s = time.perf_counter() - started
    print(f"bank: {len(hashes):,} entries ({len(banked_hashes)} photographs); index built in {built_s:.1f} s, "
          f"process peak RSS +{_rss_mib() - before:.0f} MiB")  # fmt: skip

    def timed(queries: list[str]) -> tuple[list, float]:
        started = time.perf_counter()
        found = [bank.match((query,)) for query in queries]
        return found, 1000 * (time.perf_counter() - started) / len(queries)

    reposts, repost_ms = timed(repost_hashes)
    matched = sum(label == f"photo-{i}" for i, (label, _) in enumerate(reposts))
    others, other_ms = timed(other_hashes)
    false = sum(label is not None for label, _ in others)
    distances = sorted(d for _, d in reposts if d is not None)
    print(f"re-encoded banked photographs: {matched}/{len(reposts)} matched (median distance "
          f"{distances[len(distances) // 2] if distances else '-'}), {repost_ms:.2f} ms a hash")  # fmt: skip
    print(f"photographs never banked: {false}/{len(others)} matched, {other_ms:.2f} ms a hash")
    uploads = [tuple(other_hashes[i : i + FRAMES_PER_UPLOAD]) for i in range(0, len(other_hashes), FRAMES_PER_UPLOAD)]
    started = time.perf_counter()
    for upload in uploads:
        bank.match(upload)
    per_upload = 1000 * (time.perf_counter() - started) / len(uploads)
    print(f"per upload of {FRAMES_PER_UPLOAD} frame hashes: {per_upload:.1f} ms")
    packed = np.frombuffer(bytes.fromhex("".join(hashes)), dtype=np.uint8).reshape(-1, 32)
    sample = np.frombuffer(bytes.fromhex("".join(other_hashes[:20])), dtype=np.uint8).reshape(-1, 32)
    started = time.perf_counter()
    _scan(packed, sample)
    scan_ms = 1000 * (time.perf_counter() - started) / len(sample)
    print(f"a full scan of the same bank: {scan_ms:.1f} ms a hash ({scan_ms / max(other_ms, 1e-9):.0f}x the index)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
