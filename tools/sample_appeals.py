"""Sample appeals against a warehouse's restrictive decisions, for demos and drills.

    python -m tools.sample_appeals --warehouse DIR --out APPEALS.jsonl [--labels LABELS.jsonl]

Uploaders appeal a share of the restrictive decisions (label, reduce reach, remove). With
ground-truth labels (the corpus generator's `labels.jsonl`) an appeal is overturned exactly
when the item was real, so the overturn rate the transparency report shows is the automated
decisions' real error rate on the appealed items; without labels, outcomes are drawn at
random. The output is the `--appeals` input of `pipelines.batch`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

from models.examples import load_labels
from pipelines.options import StrictParser, add_flags
from schemas.records import as_utc, format_timestamp
from schemas.vocabulary import DECISION_VISIBILITY
from warehouse.reader import WarehouseReader, open_reader

# The actions a statement of reasons is owed for: the ones an uploader can appeal.
RESTRICTIVE = tuple(DECISION_VISIBILITY)


def sample_appeals(
    decisions: list[tuple[str, str, dt.datetime]],
    labels: dict[str, str] | None,
    share: float,
    seed: int,
    now: dt.datetime,
    random_overturn_rate: float = 0.2,
) -> list[dict[str, str]]:
    """Appeal rows for a `share` of (decision_id, content_id, decided_at) decisions, each
    decided 2 to 72 hours after its decision and never later than `now` (a later one would be
    dead-lettered as a time that cannot be), lodged between the two."""
    rng = np.random.default_rng(seed)
    rows = []
    for decision_id, content_id, decided_at in sorted(decisions):
        if rng.random() >= share:
            continue
        if labels is not None and content_id in labels:
            overturned = labels[content_id] == "real"
        else:
            overturned = rng.random() < random_overturn_rate
        decided = min(decided_at + dt.timedelta(hours=float(rng.uniform(2.0, 72.0))), max(now, decided_at))
        # lodged some time after the decision, before the outcome
        submitted = decided_at + (decided - decided_at) * float(rng.uniform(0.05, 0.6))
        rows.append(
            {
                "decision_id": decision_id,
                "outcome": "overturned" if overturned else "upheld",
                "submitted_at": format_timestamp(submitted.replace(microsecond=0)),
                "decided_at": format_timestamp(decided.replace(microsecond=0)),
            }
        )
    return rows


def read_restrictive_decisions(reader: WarehouseReader) -> list[tuple[str, str, dt.datetime]]:
    actions = ", ".join(f"'{a}'" for a in RESTRICTIVE)
    table = reader.query(
        f"select decision_id, content_id, decided_at from enforcement_decisions where action in ({actions})"
    )
    rows = [(r["decision_id"], r["content_id"], r["decided_at"]) for r in table.to_pylist()]
    return [(d, c, as_utc(t)) for d, c, t in rows]


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m tools.sample_appeals", description=__doc__.split("\n\n")[0])
    add_flags(parser, "warehouse", "bigquery_endpoint", required=("warehouse",))
    parser.add_argument("--out", required=True, help="Appeals file to write (JSON Lines).")
    parser.add_argument("--labels", default=None, help="labels.jsonl (content_id, label): overturn real items.")
    parser.add_argument("--share", type=float, default=0.5, help="Share of restrictive decisions appealed.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0.0 <= args.share <= 1.0:
        parser.error("--share must be between 0 and 1")
    try:
        reader = open_reader(args.warehouse, args.bigquery_endpoint)
    except (OSError, ValueError) as exc:
        parser.error(f"--warehouse: {exc}")
    labels = None
    if args.labels:
        labels = {content_id: row["label"] for content_id, row in load_labels(args.labels).items()}
    rows = sample_appeals(read_restrictive_decisions(reader), labels, args.share, args.seed, dt.datetime.now(dt.UTC))
    Path(args.out).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    overturned = sum(r["outcome"] == "overturned" for r in rows)
    print(f"{len(rows)} appeals ({overturned} overturned) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
