"""Evaluate served models: per modality and fused, per generator family, per slice, held-out families.

    python -m models.evaluate --features WAREHOUSE --labels LABELS.jsonl --model_dir MODELS --out REPORT_DIR
        [--manifest MANIFEST.jsonl] [--leave_one_family_out]

Writes REPORT_DIR/report.json and PNG plots (ROC and DET curves, score histograms per class).
Scores are the calibrated probabilities of the exported SavedModels and the fusion, exactly
what the pipeline serves, on the test split of the models' own training seed (read from their
model cards), so nothing the models were fitted or calibrated on is scored.

Leave-one-family-out (`--leave_one_family_out`): for each generator family of each modality,
a model is trained without that family (`models.train`, same architecture and seed) and
scored on the held-out family's items against the real items of the test split. This is the
honest number for unseen generators.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from models.examples import load_labels
from models.fusion import FusionModel
from models.handlers import LoadedSignature
from models.metrics import binary_metrics
from models.registry import DeployedModel, resolve_fusion, resolve_model
from models.train import (
    feature_files,
    item_answers,
    load_examples,
    modality_dataset,
    score_split,
    split_of,
    train_modality,
    voting,
)
from schemas.records import MODALITIES

MIN_SLICE = 5  # slices smaller than this are listed with their count only


def _curves(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False-positive and true-positive rates over all thresholds, highest first."""
    order = np.argsort(-scores, kind="mergesort")
    hits = labels[order].astype(bool)
    tpr = np.r_[0.0, np.cumsum(hits) / max(hits.sum(), 1)]
    fpr = np.r_[0.0, np.cumsum(~hits) / max((~hits).sum(), 1)]
    return fpr, tpr


def plot_report(scored: dict[str, tuple[np.ndarray, np.ndarray]], out: Path) -> list[str]:
    """ROC, DET and per-class histograms; returns the PNG file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    written = []
    fig, (roc, det) = plt.subplots(1, 2, figsize=(11, 4.8))
    for name, (labels, scores) in scored.items():
        if len(set(labels.tolist())) < 2:
            continue
        fpr, tpr = _curves(labels, scores)
        roc.plot(fpr, tpr, label=name)
        clip = np.clip
        det.plot(norm.ppf(clip(fpr, 1e-4, 1 - 1e-4)), norm.ppf(clip(1 - tpr, 1e-4, 1 - 1e-4)), label=name)
    roc.plot([0, 1], [0, 1], color="grey", linewidth=0.5)
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test split)")
    ticks = [0.001, 0.01, 0.05, 0.2, 0.5, 0.8]
    det.set_xticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
    det.set_yticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
    det.set(xlabel="false positive rate", ylabel="false negative rate", title="DET (test split)")
    for axis in (roc, det):
        axis.legend(loc="best", fontsize=8)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "roc_det.png", dpi=110)
    plt.close(fig)
    written.append("roc_det.png")

    fig, axes = plt.subplots(1, len(scored), figsize=(3.6 * len(scored), 3.2), squeeze=False)
    for axis, (name, (labels, scores)) in zip(axes[0], scored.items()):
        bins = np.linspace(0, 1, 21)
        axis.hist(scores[labels == 0], bins=bins, alpha=0.6, label="real")
        axis.hist(scores[labels == 1], bins=bins, alpha=0.6, label="synthetic")
        axis.set(title=name, xlabel="P(synthetic)")
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "score_histograms.png", dpi=110)
    plt.close(fig)
    written.append("score_histograms.png")
    return written


def _breakdown(labels: np.ndarray, scores: np.ndarray, groups: list[str]) -> dict[str, Any]:
    """Metrics of each group against all real items (families) or within the group (slices)."""
    result = {}
    for group in sorted(set(groups)):
        mask = np.asarray([g == group for g in groups])
        if mask.sum() < MIN_SLICE or len(set(labels[mask].tolist())) < 2:
            result[group] = {"count": int(mask.sum()), "positives": int(labels[mask].sum())}
            continue
        result[group] = binary_metrics(labels[mask], scores[mask])
    return result


def _family_vs_real(labels: np.ndarray, scores: np.ndarray, families: list[str]) -> dict[str, Any]:
    """Each generator family's items against every real item: how well that family is caught."""
    real = np.asarray([f == "real" for f in families])
    result = {}
    for family in sorted(set(families) - {"real"}):
        mask = real | np.asarray([f == family for f in families])
        result[family] = binary_metrics(labels[mask], scores[mask])
    return result


def evaluate_modality(
    modality: str, examples: list[dict], labels: dict, deployed: DeployedModel, model: LoadedSignature, seed: int
) -> dict[str, Any]:
    dataset = modality_dataset(examples, labels, modality, seed)
    test = dataset["test"]
    scores = score_split(model, test)
    return {
        "model": f"{deployed.name}@{deployed.version}",
        "test": binary_metrics(test["labels"], scores),
        "by_family": _family_vs_real(test["labels"], scores, test["families"]),
        # Within each container: its codec and quality settings decide how many traces survive.
        "by_container": _breakdown(
            test["labels"], scores, [labels[i].get("container") or "unknown" for i in test["ids"]]
        ),
        "_scores": (test["labels"], scores, test["ids"]),
    }


def evaluate_fused(
    examples: list[dict],
    labels: dict,
    model_dir: str,
    loaded: dict[str, LoadedSignature],
    seed: int,
    context: dict[str, dict],
) -> dict[str, Any]:
    """Item-level scores on the test split: each modality alone (where present) and fused."""
    fusion: FusionModel | None = resolve_fusion(model_dir)
    test = [
        e
        for e in examples
        if split_of(e["content_id"], seed) == "test"
        and labels.get(e["content_id"], {}).get("label") in ("real", "synthetic")
    ]
    answers = item_answers(loaded, test)
    probabilities = [{m: (a.probability if a else None) for m, a in item.items()} for item in answers]
    votes = [voting(item) for item in answers]
    targets = np.asarray([float(labels[e["content_id"]]["label"] == "synthetic") for e in test])
    fused = np.asarray([fusion.predict(v) if fusion else np.nan for v in votes], dtype=np.float64)
    per_modality_item_level = {}
    for modality in MODALITIES:
        present = np.asarray([p[modality] is not None for p in probabilities])
        values = np.asarray([p[modality] if p[modality] is not None else np.nan for p in probabilities])
        per_modality_item_level[modality] = {
            "all_items_missing_as_0_5": binary_metrics(targets, np.where(present, values, 0.5)),
            "items_with_modality": binary_metrics(targets[present], values[present]) if present.any() else {},
        }
    slices = {}
    for field in ("media_type", "country", "surface"):
        groups = [str(context.get(e["content_id"], {}).get(field) or e.get(field) or "unknown") for e in test]
        slices[field] = _breakdown(targets, fused, groups) if fusion else {}
    families = [
        "+".join(sorted({f for f in (labels[e["content_id"]].get("families") or {}).values() if f})) or "real"
        for e in test
    ]
    return {
        "fusion": f"{fusion.name}@{fusion.version}" if fusion else None,
        "test": binary_metrics(targets, fused) if fusion else None,
        "item_level_by_modality": per_modality_item_level,
        "by_generator_combination": _breakdown(targets, fused, families) if fusion else {},
        "slices": slices,
        "_scores": (targets, fused),
    }


def leave_one_family_out(
    examples: list[dict], labels: dict, seed: int, epochs: int, families: dict[str, list[str]]
) -> dict[str, Any]:
    """Trains without each family in turn and scores that family against real test items."""
    import tempfile

    from models.registry import export_saved_model

    results: dict[str, Any] = defaultdict(dict)
    for modality, names in families.items():
        full = modality_dataset(examples, labels, modality, seed)
        for family in names:
            dataset = modality_dataset(examples, labels, modality, seed, exclude_families=[family])
            model, facts = train_modality(modality, dataset, epochs, 32, seed, verbose=0)
            held_out = [i for i, f in enumerate(_all_families(full)) if f == family]
            real_test = [i for i, f in enumerate(full["test"]["families"]) if f == "real"]
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / "model"
                export_saved_model(model, path, facts["calibration"]["scale"], facts["calibration"]["bias"])
                held = _subset_all_splits(full, held_out)
                real = _subset(full["test"], real_test)
                scores = np.r_[score_split(path, held), score_split(path, real)]
            targets = np.r_[np.ones(len(held["labels"])), np.zeros(len(real["labels"]))]
            results[modality][family] = binary_metrics(targets, scores) | {"held_out_items": len(held["labels"])}
            print(f"[lofo] {modality}/{family}: auc={results[modality][family]['auc']}", file=sys.stderr)
    return dict(results)


def _all_families(dataset: dict[str, dict]) -> list[str]:
    return [f for split in ("train", "validation", "test") for f in dataset[split]["families"]]


def _subset(split: dict[str, Any], indices: list[int]) -> dict[str, Any]:
    return {
        "inputs": {k: v[indices] for k, v in split["inputs"].items()},
        "labels": split["labels"][indices],
        "ids": [split["ids"][i] for i in indices],
        "families": [split["families"][i] for i in indices],
    }


def _subset_all_splits(dataset: dict[str, dict], indices: list[int]) -> dict[str, Any]:
    """Items at `indices` of the train+validation+test concatenation (the held-out family was
    never seen in training, so all of its items are fair to score)."""
    merged = {
        "inputs": {
            k: np.concatenate(
                [dataset[s]["inputs"][k] for s in ("train", "validation", "test") if len(dataset[s]["labels"])]
            )
            for k in dataset["train"]["inputs"]
        },
        "labels": np.concatenate([dataset[s]["labels"] for s in ("train", "validation", "test")]),
        "ids": [i for s in ("train", "validation", "test") for i in dataset[s]["ids"]],
        "families": _all_families(dataset),
    }
    return _subset(merged, indices)


def _strip_private(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_private(v) for k, v in value.items() if not k.startswith("_")}
    return value


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", required=True, help="Warehouse dir, TFRecord/Parquet dir, or a glob.")
    parser.add_argument("--labels", required=True, help="labels.jsonl with label, <modality>_label and families.")
    parser.add_argument("--model_dir", required=True, help="Model directory (newest version of each is evaluated).")
    parser.add_argument("--out", required=True, help="Report directory: report.json and PNG plots.")
    parser.add_argument("--manifest", default=None, help="Upload events, for slices by country and surface "
                        "(default: manifest.jsonl beside the labels, if present).")  # fmt: skip
    parser.add_argument("--leave_one_family_out", action="store_true", help="Also retrain without each family.")
    parser.add_argument("--lofo_epochs", type=int, default=60, help="Epoch bound for leave-one-family-out models.")
    parser.add_argument(
        "--lofo_modalities", nargs="*", choices=MODALITIES, default=list(MODALITIES), help="Modalities to hold out in."
    )
    args = parser.parse_args(argv)

    files = feature_files(args.features)
    if not files:
        parser.error(f"--features: no TFRecord or Parquet files at {args.features}")
    examples, labels = load_examples(files), load_labels(args.labels)
    cards = {m: resolve_model(args.model_dir, m) for m in MODALITIES}
    missing = [m for m, card in cards.items() if card is None]
    if missing:
        parser.error(f"--model_dir: no model for {missing}")
    seed = int(cards["visual"].card.get("training_data", {}).get("seed", 7))
    manifest = Path(args.manifest) if args.manifest else Path(args.labels).with_name("manifest.jsonl")
    context = {}
    if manifest.exists():
        context = {r["content_id"]: r for r in map(json.loads, filter(str.strip, manifest.read_text().splitlines()))}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"features": files, "labels": args.labels, "model_dir": args.model_dir, "seed": seed}
    loaded = {m: LoadedSignature(cards[m].path) for m in MODALITIES}  # each SavedModel loaded once
    report["modalities"] = {m: evaluate_modality(m, examples, labels, cards[m], loaded[m], seed) for m in MODALITIES}
    report["fused"] = evaluate_fused(examples, labels, args.model_dir, loaded, seed, context)
    if args.leave_one_family_out:
        families = {m: sorted(report["modalities"][m]["by_family"]) for m in args.lofo_modalities}
        report["leave_one_family_out"] = leave_one_family_out(examples, labels, seed, args.lofo_epochs, families)

    curves = {m: report["modalities"][m]["_scores"][:2] for m in MODALITIES}
    if report["fused"]["fusion"]:
        curves["fused (items)"] = report["fused"]["_scores"]
    report["plots"] = plot_report(curves, out)
    if report["fused"]["fusion"]:
        # Labelled fused scores of the test split: the input `models.thresholds` takes.
        targets, fused = report["fused"]["_scores"]
        lines = [json.dumps({"score": float(s), "label": int(y)}) for s, y in zip(fused, targets)]
        (out / "fused_test_scores.jsonl").write_text("\n".join(lines) + "\n")
    (out / "report.json").write_text(json.dumps(_strip_private(report), indent=2, default=str) + "\n")
    print(summary_table(report))
    print(f"report: {out / 'report.json'}")
    return 0


def summary_table(report: dict[str, Any]) -> str:
    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else "-"

    lines = ["                    auc    eer    ap     recall@1%fpr"]
    rows = [(m, report["modalities"][m]["test"]) for m in MODALITIES]
    if report["fused"]["test"]:
        rows.append(("fused (items)", report["fused"]["test"]))
    for name, metrics in rows:
        at_1 = (metrics.get("at_fpr_1pct") or {}).get("recall")
        lines.append(
            f"{name:<18} {fmt(metrics['auc'])}  {fmt(metrics['eer'])}  "
            f"{fmt(metrics['average_precision'])}  {fmt(at_1)}   (n={metrics['count']})"
        )
    for modality, families in report.get("leave_one_family_out", {}).items():
        for family, metrics in families.items():
            lines.append(f"held out {modality}/{family:<10} auc {fmt(metrics['auc'])} (n={metrics['held_out_items']})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run())
