"""Two evaluation reports side by side: did detection hold across a change?

    python -m training.compare_reports BEFORE/report.json AFTER/report.json \
        [--names f9 f10] [--slices by_source by_container] [--outcomes BEFORE.json AFTER.json]

Each report is `training.evaluate`'s `report.json` for one model set, on the same corpus and
split. Prints Markdown: per modality and for the content and fused scores, the test metrics
before and after and their change; the same for each slice of each modality that both
reports hold (`--slices`); the policy's thresholds read on both; and, with `--outcomes`, the
held-out set's outcomes through the real job (`training.outcomes`), per label. A feature
version change is judged on these tables (`reports/MODEL_REPORT.md`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

_METRICS = (("auc", "AUC"), ("eer", "EER"), ("average_precision", "AP"))
_RECALLS = (("at_fpr_1pct", "recall at 1% FPR"), ("at_fpr_0_1pct", "recall at 0.1% FPR"))
_MEANS = (
    ("mean_score_real", "mean score, real"),
    ("mean_score_synthetic", "mean score, synthetic"),
)  # one-class slices


def _figures(metrics: dict[str, Any] | None) -> dict[str, float | None]:
    """The compared figures of one metrics block (None where the block lacks one)."""
    metrics = metrics or {}
    figures = {label: metrics.get(key) for key, label in _METRICS}
    figures |= {label: (metrics.get(key) or {}).get("recall") for key, label in _RECALLS}
    return figures | {label: metrics.get(key) for key, label in _MEANS}


def _cell(before: float | None, after: float | None) -> str:
    if before is None and after is None:
        return "-"
    if before is None or after is None:
        return f"{before if before is not None else '-'} / {after if after is not None else '-'}"
    change = round(after - before, 3) + 0.0  # + 0.0: no "-0.000"
    return f"{before:.3f} -> {after:.3f} ({change:+.3f})"


def _table(rows: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, int | None]]) -> list[str]:
    header = ["", "n", *(label for _, label in (*_METRICS, *_RECALLS, *_MEANS))]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, before, after, count in rows:
        old, new = _figures(before), _figures(after)
        cells = [_cell(old[label], new[label]) for label in old]
        lines.append(f"| {name} | {count if count is not None else '-'} | " + " | ".join(cells) + " |")
    return lines


def compare(before: dict[str, Any], after: dict[str, Any], names: tuple[str, str], slices: list[str]) -> list[str]:
    """Markdown lines comparing two `training.evaluate` reports."""
    lines = [f"Test split, {names[0]} -> {names[1]} (change in brackets):", ""]
    rows = []
    for modality in sorted(set(before["modalities"]) & set(after["modalities"])):
        old, new = before["modalities"][modality], after["modalities"][modality]
        rows.append((modality, old.get("test"), new.get("test"), (new.get("test") or {}).get("count")))
    for score in ("content", "test"):
        old, new = before["fused"].get(score), after["fused"].get(score)
        rows.append(("fused" if score == "test" else "content score", old, new, (new or {}).get("count")))
    lines += _table(rows)
    for modality in sorted(set(before["modalities"]) & set(after["modalities"])):
        for slicing in slices:
            old, new = before["modalities"][modality].get(slicing, {}), after["modalities"][modality].get(slicing, {})
            shared = sorted(set(old) & set(new))
            if not shared:
                continue
            lines += ["", f"{modality}, {slicing.replace('_', ' ')}:", ""]
            lines += _table([(name, old[name], new[name], new[name].get("count")) for name in shared])
    policy = [(before["fused"].get("at_policy") or {}), (after["fused"].get("at_policy") or {})]
    if all(policy):
        lines += ["", f"At the policy's thresholds ({before.get('policy')}), test split:", ""]
        lines += ["| threshold | " + " | ".join(names) + " |", "| --- | --- | --- |"]
        for score, tier in (("content", "remove"), ("content", "review_content"), ("fused", "review_fused")):
            cells = []
            for report in policy:
                at = report.get(score, {}).get(tier) or {}
                cells.append(f"recall {at.get('recall', 0):.3f}, real flagged {at.get('real_flagged', '-')}")
            lines.append(f"| {tier} ({policy[0]['thresholds'].get(tier)}) | " + " | ".join(cells) + " |")
    return lines


def compare_outcomes(before: dict[str, Any], after: dict[str, Any], names: tuple[str, str]) -> list[str]:
    """Markdown lines comparing two `training.outcomes` files (the held-out set through the job)."""
    lines = ["", "Held-out set through the job:", "", "| | " + " | ".join(names) + " |", "| --- | --- | --- |"]
    lines.append(f"| content AUC | {before['auc']['content']:.3f} | {after['auc']['content']:.3f} |")
    lines.append(f"| fused AUC | {before['auc']['fused']:.3f} | {after['auc']['fused']:.3f} |")
    for label in sorted(set(before["by_label"]) & set(after["by_label"])):
        old, new = before["by_label"][label], after["by_label"][label]
        for action in sorted(set(old["actions"]) | set(new["actions"])):
            lines.append(
                f"| {label} items: {action} | {old['actions'].get(action, 0)} of {old['items']} "
                f"| {new['actions'].get(action, 0)} of {new['items']} |"
            )
    return lines


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.compare_reports", description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="training.evaluate report.json of the first model set.")
    parser.add_argument("after", help="training.evaluate report.json of the second, same corpus and split.")
    parser.add_argument("--names", nargs=2, default=("before", "after"), help="What to call the two.")
    parser.add_argument("--slices", nargs="*", default=["by_source", "by_container"], help="Slices to compare.")
    parser.add_argument("--outcomes", nargs=2, default=None, help="training.outcomes JSON of each, the held-out set.")
    args = parser.parse_args(argv)
    before, after = (json.loads(Path(path).read_text()) for path in (args.before, args.after))
    names = tuple(args.names)
    lines = compare(before, after, names, args.slices)
    if args.outcomes:
        old, new = (json.loads(Path(path).read_text()) for path in args.outcomes)
        lines += compare_outcomes(old, new, names)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(run())
