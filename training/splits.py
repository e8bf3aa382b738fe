"""Train, validation and test splits by split group or content id: the same item lands in the same
split every run."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

SPLITS = ("train", "validation", "test")
SPLIT_DOC = (
    "by split group (items made from one photograph, film segment or recording; else the content id), "
    "sha256(seed:group): 70% train, 15% validation, 15% test"
)


def split_of(content_id: str, seed: int, fractions: tuple[float, float] = (0.7, 0.15)) -> str:
    """Deterministic split by content id: the same item lands in the same split every run."""
    digest = hashlib.sha256(f"{seed}:{content_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < fractions[0]:
        return "train"
    return "validation" if position < fractions[0] + fractions[1] else "test"


def item_split(label_row: Mapping[str, Any], seed: int) -> str:
    """An item's split: the one its row names (`split`: a training set from the warehouse splits
    by upload time), else its `split_group`'s (a source corpus's items made from one photograph,
    film segment or recording share one, so none is tested on what trained it), else its
    content id's."""
    if label_row.get("split") in SPLITS:
        return label_row["split"]
    return split_of(label_row.get("split_group") or label_row["content_id"], seed)
