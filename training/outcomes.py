"""What the job decided: figures from a warehouse's scores and decisions, against labels.

    python -m training.outcomes --warehouse DIR --labels LABELS.jsonl [...] [--policy P] [--out FILE.json]

The batch job scores a labelled set (the fixed held-out set, an evasion set, the test split)
with the served models and decides under the shipped policy; this reads back `media_scores`,
`enforcement_decisions` and `dead_letter` and reports, per class and per source: the actions
taken (how many real items were removed, how many synthetic ones), the rates at the policy's
score thresholds, how often each modality abstained, the AUC of the content and fused scores
where both classes are present (also every synthetic item against each source of real ones
alone, so that one easy or hard real source does not hide in the mean), and the items that were
not scored at all. These are figures
of the whole system on media it may never have seen, not of a model on a test split.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from models.examples import load_labels
from pipelines.options import StrictParser, add_flags
from schemas.vocabulary import MODALITIES
from training.metrics import roc_auc
from training.thresholds import policy_thresholds


def _rows(warehouse: Path) -> tuple[list[dict], dict[str, str]]:
    with duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True) as con:
        scores = con.sql(
            "select s.content_id, s.content_score, s.fused_score, d.action, d.rule_id, "
            + ", ".join(f"s.{m}_score, s.{m}_abstained" for m in MODALITIES)
            + " from media_scores s left join enforcement_decisions d using (content_id)"
        ).fetchall()
        columns = ["content_id", "content_score", "fused_score", "action", "rule_id"] + [
            f"{m}_{c}" for m in MODALITIES for c in ("score", "abstained")
        ]
        unscored = dict(
            con.sql("select content_id, error_type from dead_letter where content_id is not null").fetchall()
        )
    return [dict(zip(columns, row)) for row in scores], unscored


def _rates(rows: list[dict], thresholds: dict[str, float]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, threshold in thresholds.items():
        field = "fused_score" if name == "review_fused" else "content_score"
        flagged = sum(1 for r in rows if r[field] is not None and r[field] >= threshold)
        result[name] = {"threshold": threshold, "flagged": flagged, "rate": flagged / len(rows) if rows else None}
    return result


def summarise(rows: list[dict], thresholds: dict[str, float]) -> dict[str, Any]:
    """Counts, actions, rates at the thresholds and abstentions of one group of scored items."""
    actions = Counter(r["action"] or "undecided" for r in rows)
    return {
        "items": len(rows),
        "actions": dict(sorted(actions.items())),
        "removed_rate": actions.get("remove", 0) / len(rows) if rows else None,
        "restricted_rate": sum(actions.get(a, 0) for a in ("remove", "reduce_reach", "label")) / len(rows)
        if rows
        else None,
        "at_thresholds": _rates(rows, thresholds),
        "abstention_rate": {
            m: (sum(bool(r[f"{m}_abstained"]) for r in present) / len(present))
            for m in MODALITIES
            if (present := [r for r in rows if r[f"{m}_score"] is not None])
        },
        "no_content_evidence_rate": sum(r["content_score"] is None for r in rows) / len(rows) if rows else None,
        "rules": dict(Counter(r["rule_id"] for r in rows if r["rule_id"]).most_common()),
    }


def _auc(rows: list[dict], field: str, missing: float | None) -> float | None:
    """AUC of `field` against the labels; items without a score count as `missing`, or are left
    out when `missing` is None (a modality's own AUC: over the items that have it)."""
    if missing is None:
        rows = [r for r in rows if r[field] is not None]
    labels = np.asarray([r["label"] == "synthetic" for r in rows])
    scores = np.asarray([missing if r[field] is None else r[field] for r in rows], dtype=np.float64)
    return roc_auc(labels, scores) if 0 < labels.sum() < len(labels) else None


def _aucs(rows: list[dict]) -> dict[str, float | None]:
    """Content and fused AUC (an unscored item ranks as undecided), and each content modality's
    over the items it scored."""
    return {"content": _auc(rows, "content_score", 0.0), "fused": _auc(rows, "fused_score", 0.5)} | {
        m: _auc(rows, f"{m}_score", None) for m in ("visual", "audio")
    }


def _aucs_against_each_real_source(rows: list[dict]) -> dict[str, dict]:
    """Every synthetic item against each source of real ones alone: its item count and AUCs."""
    synthetic, real_by_source = [], defaultdict(list)
    for row in rows:
        if row["label"] == "synthetic":
            synthetic.append(row)
        elif row["label"] == "real":
            real_by_source[row["source"]].append(row)
    return {source: {"items": len(real)} | _aucs(real + synthetic) for source, real in sorted(real_by_source.items())}


def outcomes(warehouse: Path, labels: dict[str, dict], thresholds: dict[str, float]) -> dict[str, Any]:
    rows, unscored = _rows(warehouse)
    for row in rows:
        label = labels.get(row["content_id"], {})
        row["label"] = label.get("label", "unlabelled")
        row["source"] = label.get("source", "generator")
        row["media_type"] = label.get("media_type", "unknown")
    report: dict[str, Any] = {
        "warehouse": str(warehouse),
        "thresholds": thresholds,
        "scored": len(rows),
        "not_scored": dict(Counter(unscored.values())),
        "not_scored_by_source": dict(Counter(labels.get(i, {}).get("source", "?") for i in unscored)),
        "auc": _aucs(rows),
        "auc_against_each_real_source": _aucs_against_each_real_source(rows),
        "by_label": {},
        "by_source": {},
        "by_media_type": {},
    }
    for label in sorted({r["label"] for r in rows}):
        report["by_label"][label] = summarise([r for r in rows if r["label"] == label], thresholds)
    for key in ("source", "media_type"):
        for value in sorted({r[key] for r in rows}):
            group = [r for r in rows if r[key] == value]
            report[f"by_{key}"][value] = {
                label: summarise([r for r in group if r["label"] == label], thresholds)
                for label in sorted({r["label"] for r in group})
            }
    return report


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m training.outcomes", description=__doc__.split("\n\n")[0])
    add_flags(parser, "warehouse", required=("warehouse",))
    parser.add_argument("--labels", required=True, nargs="+")
    add_flags(parser, "policy")  # the live policy
    parser.add_argument("--out", default=None, help="Write the figures here as JSON (default: print them).")
    args = parser.parse_args(argv)
    report = outcomes(Path(args.warehouse), load_labels(args.labels), policy_thresholds(args.policy))
    text = json.dumps(report, indent=2, sort_keys=True)
    if args.out:
        Path(args.out).write_text(text + "\n")
    for label, summary in report["by_label"].items():
        print(f"{label:<10} items {summary['items']:>5}  removed {summary['removed_rate']:.3f}  "
              f"actions {summary['actions']}  abstained {summary['abstention_rate']}")  # fmt: skip
    print(" ".join(f"auc {k} {v}" for k, v in report["auc"].items()) + f"  not scored {report['not_scored']}")
    for source, figures in report["auc_against_each_real_source"].items():
        print(f"  against the {figures['items']} real items of {source}: "
              + " ".join(f"auc {k} {v}" for k, v in figures.items() if k != "items"))  # fmt: skip
    if not args.out:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run())
