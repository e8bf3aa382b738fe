"""Reviewers' verdicts on a warehouse's open review queue, for demos and drills.

    python -m tools.sample_verdicts --warehouse DIR --labels LABELS.jsonl --out VERDICTS.jsonl

Each queued item without a verdict yet (a campaign's once, for all its members) is answered by
one of a few pseudonymous reviewers from the ground truth (the corpus generator's
`labels.jsonl`): a synthetic item is violating and removed (labelled, in a disclosed-AI
category), a real one is not violating. Blind items are
answered without looking at what the automation did, as in the queue. Each verdict is dated
within its item's SLA and never later than now. The output is the `--reviews` input of
`pipelines.batch`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

from enforcement.review import review_id_of
from models.examples import load_labels
from pipelines.options import StrictParser, add_flags
from schemas.records import as_utc, format_timestamp
from warehouse.reader import WarehouseReader, open_reader

REVIEWERS = tuple(f"rev-{n:02d}" for n in range(1, 6))


def answer(item: dict, label: str, reviewer: str, decided_at: dt.datetime) -> dict:
    """A verdict on one queue row from the item's ground-truth label."""
    violating = label == "synthetic"
    category = item.get("category") or "synthetic_media_undisclosed"
    action = ("label" if category == "synthetic_media_disclosed" else "remove") if violating else "none"
    on = {"campaign_id": item["campaign_id"]} if item.get("campaign_id") else {"decision_id": item["decision_id"]}
    return {
        "review_id": item["review_id"],
        **on,
        "violating": violating,
        "category": category if violating else None,
        "action": action,
        "reviewer": reviewer,
        "decided_at": format_timestamp(decided_at.replace(microsecond=0)),
    }


def sample_verdicts(queue: list[dict], labels: dict[str, str], seed: int, now: dt.datetime) -> list[dict]:
    """Verdicts for the queue rows whose item has a label (others stay open)."""
    rng = np.random.default_rng(seed)
    rows = []
    for item in sorted(queue, key=lambda r: r["review_id"]):
        label = labels.get(item["content_id"])
        if label not in ("real", "synthetic"):
            continue
        queued, due = as_utc(item["queued_at"]), as_utc(item["due_at"])
        decided = queued + (due - queued) * float(rng.uniform(0.05, 0.9))
        rows.append(answer(item, label, REVIEWERS[int(rng.integers(len(REVIEWERS)))], min(decided, now)))
    return rows


def open_queue(queue: list[dict], reviews: list[dict]) -> list[dict]:
    """The queue rows a reviewer still opens: not answered, and not a member of a campaign
    whose one item stands for it (that item's verdict answers the member's own row)."""
    answered = {r["review_id"] for r in reviews} | {r["campaign_id"] for r in reviews if r.get("campaign_id")}
    covered = {review_id_of(d) for r in queue if r.get("campaign_id") for d in r.get("campaign_members") or ()}
    items = {}
    for row in queue:
        if row["review_id"] in answered or row.get("campaign_id") in answered or row["review_id"] in covered:
            continue
        items[row["review_id"]] = row  # a campaign found again, larger, keeps one item
    return list(items.values())


def read_open_queue(reader: WarehouseReader) -> list[dict]:
    queue = reader.query(
        "select review_id, decision_id, content_id, category, queued_at, due_at, campaign_id, campaign_members "
        "from review_queue"
    ).to_pylist()
    return open_queue(queue, reader.query("select review_id, campaign_id from reviews").to_pylist())


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m tools.sample_verdicts", description=__doc__.split("\n\n")[0])
    add_flags(parser, "warehouse", "bigquery_endpoint", required=("warehouse",))
    parser.add_argument("--labels", required=True, help="labels.jsonl (content_id, label): what reviewers find.")
    parser.add_argument("--out", required=True, help="Verdicts file to write (JSON Lines).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        reader = open_reader(args.warehouse, args.bigquery_endpoint)
    except (OSError, ValueError) as exc:
        parser.error(f"--warehouse: {exc}")
    labels = {content_id: row["label"] for content_id, row in load_labels([args.labels]).items()}
    rows = sample_verdicts(read_open_queue(reader), labels, args.seed, dt.datetime.now(dt.UTC))
    Path(args.out).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    violating = sum(r["violating"] for r in rows)
    print(f"{len(rows)} verdicts ({violating} violating) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
