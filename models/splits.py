"""Train, validation and test splits by content id: the same item lands in the same split every run."""

from __future__ import annotations

import hashlib

SPLITS = ("train", "validation", "test")
SPLIT_DOC = "by content_id, sha256(seed:content_id): 70% train, 15% validation, 15% test"


def split_of(content_id: str, seed: int, fractions: tuple[float, float] = (0.7, 0.15)) -> str:
    """Deterministic split by content id: the same item lands in the same split every run."""
    digest = hashlib.sha256(f"{seed}:{content_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < fractions[0]:
        return "train"
    return "validation" if position < fractions[0] + fractions[1] else "test"
