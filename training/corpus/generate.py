"""Generating a corpus: plans, media and the manifest and labels files, in parallel processes
with the same bytes for any number of them."""

from __future__ import annotations

import functools
import json
import multiprocessing
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from training.corpus.containers import _CORRUPT_SHAPES, _make_audio, _make_corrupt, _make_image, _make_video
from training.corpus.plans import (
    _CORRUPT_KINDS,
    _CORRUPT_STREAM,
    _ENCODE,
    _EXTENSIONS,
    FAMILIES,
    Account,
    ItemPlan,
    _allowed_families,
    _labels_row,
    _plan_item,
    _plan_metadata,
    _plan_upload,
    _rng,
    account_pool,
    upload_event,
)


def generate_corpus(
    out_dir: str | Path,
    count: int,
    seed: int = 0,
    corrupt: int = 0,
    families: Mapping[str, Iterable[str]] | Iterable[str] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Writes a labelled corpus: ``media/``, ``manifest.jsonl`` and ``labels.jsonl``.

    Args:
        out_dir: directory to write into (created if missing).
        count: number of regular (real or synthetic) items.
        seed: non-negative seed; the same arguments give byte-identical output.
        corrupt: number of extra broken files, labelled "corrupt".
        families: synthetic families allowed. None allows all; a mapping such as
            ``{"visual": ["upsample"]}`` restricts only the modalities it names; a flat list of
            names is the complete allow-list across modalities (a modality with none allowed
            makes no synthetic content of that kind).
        workers: processes that make the media (the output is the same for any number).

    Returns:
        A summary: totals by media type, label, container and family per modality.
    """
    if count < 0 or corrupt < 0 or seed < 0:
        raise ValueError("count, corrupt and seed must not be negative")
    allowed = _allowed_families(families)
    out = Path(out_dir)
    media_dir = out / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    accounts, weights = account_pool(seed)

    plans = [_plan_item(seed, index, allowed) for index in range(count)]
    for j in range(corrupt):
        kind = _CORRUPT_KINDS[j % len(_CORRUPT_KINDS)]
        media_type, container = _CORRUPT_SHAPES[kind]
        plans.append(ItemPlan(count + j, f"c{count + j:06d}", media_type, container, None, None, None, kind))

    make = functools.partial(_make_item, out, seed, accounts, weights)
    if workers > 1 and len(plans) > 1:
        # Every item draws from its own seeded streams, so the bytes do not depend on which
        # process makes it. Workers come from a fork server (a clean single-threaded process):
        # forking a caller that runs threads (Beam, TensorFlow, a test runner) can deadlock.
        with multiprocessing.get_context("forkserver").Pool(workers) as pool:
            rows = pool.map(make, plans, chunksize=8)
    else:
        rows = [make(plan) for plan in plans]

    rows.sort(key=lambda row: (row[0], row[1]))  # an upload stream, in event-time order
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as manifest_file:
        manifest_file.writelines(json.dumps(row[2], sort_keys=True) + "\n" for row in rows)
    with open(out / "labels.jsonl", "w", encoding="utf-8") as labels_file:
        labels_file.writelines(json.dumps(row[3], sort_keys=True) + "\n" for row in rows)
    return _summary(out, plans)


def _make_item(
    out: Path, seed: int, accounts: list[Account], weights: tuple[np.ndarray, np.ndarray], plan: ItemPlan
) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """Writes one item's media file; returns its (upload time, content id, manifest row, labels row)."""
    _, uploaded_at, _, country = _plan_upload(seed, plan, accounts, weights)
    path = out / "media" / f"{plan.content_id}.{_EXTENSIONS[plan.container]}"
    if plan.corrupt_kind:
        _make_corrupt(path, plan.corrupt_kind, _rng(seed, _CORRUPT_STREAM, plan.index, _ENCODE))
        declared = False
    else:
        meta = _plan_metadata(seed, plan, uploaded_at, country)
        {"video": _make_video, "image": _make_image, "audio": _make_audio}[plan.media_type](path, plan, meta, seed)
        declared = meta.declared_ai
    manifest = upload_event(seed, plan, accounts, weights, declared)
    return manifest["uploaded_at"], plan.content_id, manifest, _labels_row(plan)


def _summary(out: Path, plans: list[ItemPlan]) -> dict[str, Any]:
    by_family: dict[str, dict[str, int]] = {m: {} for m in FAMILIES}
    for plan in plans:
        for modality, family in (("visual", plan.visual_family), ("audio", plan.audio_family),
                                 ("metadata", plan.metadata_family)):  # fmt: skip
            if family:
                by_family[modality][family] = by_family[modality].get(family, 0) + 1
    return {
        "out_dir": str(out),
        "items": len(plans),
        "by_media_type": dict(sorted(Counter(p.media_type for p in plans).items())),
        "by_label": dict(sorted(Counter(p.label for p in plans).items())),
        "by_container": dict(sorted(Counter(p.container for p in plans).items())),
        "by_family": {m: dict(sorted(f.items())) for m, f in by_family.items()},
    }
