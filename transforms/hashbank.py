"""A bank of perceptual hashes (PDQ) of known synthetic media, and matching uploads against it.

PDQ (the hash Meta's Hasher-Matcher-Actioner and ThreatExchange use) survives re-encoding,
resizing and small edits: a re-upload of a known deepfake lands within a small Hamming
distance of its banked hash even when no detector would score it. A match is a policy signal
(`hash_match`), not a decision by itself.

Bank file: JSON Lines, one entry a line: {"pdq": "<64 hex digits>", "label": "...", ...}.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from schemas.config import refuse_unknown
from schemas.records import MediaFeatures
from transforms.dead_letter import ParDoOrDeadLetter

# The threshold ThreatExchange uses for PDQ matches (of 256 bits).
DEFAULT_MAX_DISTANCE = 31
BANK_FIELDS = ("pdq", "label")  # one JSON object per line
# Frames PDQ rates below this quality (flat, featureless) hash unreliably and are skipped.
MIN_QUALITY = 50


# PDQ reduces a picture to 64x64 with its Jarosz tent filters; above this side it is hashed
# from an area-averaged copy (a 1080p frame costs a seventh as much, and the hash moves by a
# few bits of 256, far inside the match distance: tests/test_hashbank.py measures it).
PDQ_INPUT_SIDE = 512


def pdq_hash(frame: np.ndarray) -> tuple[str, int]:
    """The PDQ hash of an RGB frame as 64 hex digits, and PDQ's quality score (0-100)."""
    import cv2
    import pdqhash

    height, width = frame.shape[:2]
    if max(height, width) > PDQ_INPUT_SIDE:
        scale = PDQ_INPUT_SIDE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    bits, quality = pdqhash.compute(np.ascontiguousarray(frame))
    return np.packbits(bits.astype(np.uint8)).tobytes().hex(), int(quality)


def frame_hashes(frames: list[np.ndarray]) -> tuple[str, ...]:
    """Distinct hashes of the frames good enough to hash."""
    hashes = []
    for frame in frames:
        digest, quality = pdq_hash(frame)
        if quality >= MIN_QUALITY and digest not in hashes:
            hashes.append(digest)
    return tuple(hashes)


def _bits(hex_digests: list[str]) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex("".join(hex_digests)), dtype=np.uint8).reshape(-1, 32), axis=1)


@dataclasses.dataclass(frozen=True)
class HashBank:
    """Banked PDQ hashes with their labels."""

    hashes: tuple[str, ...]
    labels: tuple[str, ...]
    max_distance: int = DEFAULT_MAX_DISTANCE

    @classmethod
    def load(cls, path: str | Path, max_distance: int = DEFAULT_MAX_DISTANCE) -> HashBank:
        """Reads a bank file.

        Raises:
            ValueError: a line is not JSON or its `pdq` is not 64 hex digits (line number named).
        """
        hashes, labels = [], []
        for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                digest = str(entry["pdq"]).lower()
                bytes.fromhex(digest)
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path}:{number}: expected {{'pdq': <64 hex digits>, 'label': ...}}") from None
            refuse_unknown(entry, BANK_FIELDS, f"{path}:{number}: ")
            if len(digest) != 64:
                raise ValueError(f"{path}:{number}: pdq must be 64 hex digits, got {len(digest)}")
            hashes.append(digest)
            labels.append(str(entry.get("label", "known_synthetic")))
        return cls(tuple(hashes), tuple(labels), max_distance)

    @staticmethod
    def combined(*banks: HashBank | None) -> HashBank | None:
        """One bank of the given ones' entries (None when there are none)."""
        present = [bank for bank in banks if bank is not None and bank.hashes]
        if not present:
            return None
        return HashBank(tuple(h for bank in present for h in bank.hashes),
                        tuple(label for bank in present for label in bank.labels),
                        max(bank.max_distance for bank in present))  # fmt: skip

    def match(self, hashes: tuple[str, ...]) -> tuple[str | None, int | None]:
        """The label and distance of the closest banked hash within `max_distance`, else (None, None)."""
        if not hashes or not self.hashes:
            return None, None
        distances = (_bits(list(hashes))[:, None, :] != _bits(list(self.hashes))[None, :, :]).sum(axis=2)
        query, entry = np.unravel_index(int(distances.argmin()), distances.shape)
        best = int(distances[query, entry])
        return (self.labels[entry], best) if best <= self.max_distance else (None, None)


class _MatchDoFn(beam.DoFn):
    def __init__(self, bank: HashBank):
        self._bank = bank
        self._matches = Metrics.counter("hash_bank", "matches")

    def process(self, item: MediaFeatures):
        hashes = item.visual.pdq_hashes if item.visual is not None else ()
        label, distance = self._bank.match(hashes)
        if label is not None:
            self._matches.inc()
        yield dataclasses.replace(item, hash_match=label, hash_distance=distance)


class MatchHashBank(beam.PTransform):
    """MediaFeatures -> MediaFeatures with `hash_match` set from the bank.

    Returns `(items, dead_letters)` (step `match_hash_bank`)."""

    def __init__(self, bank: HashBank):
        super().__init__()
        self._bank = bank

    def expand(self, items):
        return items | "Match" >> ParDoOrDeadLetter(_MatchDoFn(self._bank), step="match_hash_bank")
