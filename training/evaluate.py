"""Evaluate served models: per modality, content and fused, per family, per source, held-out runs.

    python -m training.evaluate --warehouse WAREHOUSE --labels LABELS.jsonl [MORE.jsonl ...] --model_dir MODELS
        --out REPORT_DIR [--policy POLICY.yaml] [--leave_one_family_out] [--leave_one_source_out]

Writes REPORT_DIR/report.json, `validation_scores.jsonl` and `test_scores.jsonl` (label,
content and fused score and source of every item of the split: `training.thresholds` chooses on
the first and checks on the second) and PNG plots (ROC and DET curves, score
histograms per class). Scores are the calibrated probabilities of the exported SavedModels,
their domain gates and the fusion, exactly what the pipeline serves, on the test split of the
models' own training seed (read from their model cards), so nothing the models were fitted or
calibrated on is scored. A modality that abstains on an item does not vote, as in serving;
its probability still counts in the per-modality curves, whose abstention rate is reported.

Rates at the policy's thresholds (`--policy`, the shipped one by default) are given per source
of items: the generator, and each source of media made elsewhere (`training.sources`).

Leave-one-family-out (`--leave_one_family_out`): for each generator family of each modality, a
model is trained without that family and scored on it against the real test items.
Leave-one-source-out (`--leave_one_source_out`): for each source of media made elsewhere in
the training data, the modality it feeds is trained without it (and its domain gate fitted
without it), then scored on all of that source's items against the test items of the other
class: the honest number for media from somewhere the models never saw. A picture generator is
held out with every source it re-drew (`held_out_group`): the visual model's
leave-one-generator-out.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from models.domain import GATE_INPUT, fit_gate
from models.examples import item_source, load_labels
from models.fusion import FusionModel
from models.handlers import LoadedSignature, judge_domain
from models.registry import DeployedModel, export_saved_model, resolve_fusion, resolve_model
from pipelines.options import StrictParser, add_flags
from schemas.vocabulary import MODALITIES
from training.metrics import binary_metrics
from training.splits import item_split
from training.thresholds import policy_thresholds
from training.train import (
    item_answers,
    modality_dataset,
    read_features,
    score_split,
    train_modality,
    voting,
)

MIN_SLICE = 5  # slices smaller than this are listed with their count only
DEFAULT_POLICY = "policies/synthetic_media_v1.yaml"
# Which modality each kind of source feeds (a film's speech track is its own speech source).
SOURCE_MODALITY = {
    "speech": "audio",
    "synthesiser": "audio",
    "photo": "visual",
    "still": "visual",
    "video": "visual",
    "generator": "visual",
}


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
    """Metrics within each group (where it holds both classes; its counts otherwise)."""
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


def rates_at(labels: np.ndarray, scores: np.ndarray, thresholds: dict[str, float]) -> dict[str, Any]:
    """Share of synthetic items (recall) and of real items (false-positive rate) at or above
    each threshold; a missing score (NaN: nothing voted) is never at or above one."""
    labels = np.asarray(labels, dtype=bool)
    result: dict[str, Any] = {"synthetic": int(labels.sum()), "real": int((~labels).sum())}
    for name, threshold in thresholds.items():
        flagged = np.nan_to_num(scores, nan=-1.0) >= threshold
        result[name] = {
            "threshold": threshold,
            "recall": float(flagged[labels].mean()) if labels.any() else None,
            "fpr": float(flagged[~labels].mean()) if (~labels).any() else None,
            "real_flagged": int(flagged[~labels].sum()),
        }
    return result


def evaluate_modality(
    modality: str, examples: list[dict], labels: dict, deployed: DeployedModel, model: LoadedSignature, seed: int
) -> dict[str, Any]:
    dataset = modality_dataset(examples, labels, modality, seed)
    test = dataset["test"]
    scores = score_split(model, test)
    verdicts = judge_domain(model, test["inputs"]) if len(test["labels"]) else []
    abstained = np.asarray([bool(v and v.abstained) for v in verdicts], dtype=bool)
    by_source = {}
    for source in sorted(set(test["sources"])):
        mask = np.asarray([s == source for s in test["sources"]])
        entry = _breakdown(test["labels"][mask], scores[mask], [source] * int(mask.sum()))[source]
        by_source[source] = entry | {
            "abstention_rate": float(abstained[mask].mean()),
            "mean_score_real": float(scores[mask & (test["labels"] == 0)].mean()) if (mask & (test["labels"] == 0)).any() else None,
            "mean_score_synthetic": float(scores[mask & (test["labels"] == 1)].mean()) if (mask & (test["labels"] == 1)).any() else None,
        }  # fmt: skip
    voting_mask = ~abstained
    return {
        "model": f"{deployed.name}@{deployed.version}",
        "test": binary_metrics(test["labels"], scores),
        "abstention_rate": float(abstained.mean()) if len(abstained) else None,
        "test_voting_only": binary_metrics(test["labels"][voting_mask], scores[voting_mask])
        if voting_mask.any()
        else {},
        "by_family": _family_vs_real(test["labels"], scores, test["families"]),
        # Within each container: its codec and quality settings decide how many traces survive.
        "by_container": _breakdown(
            test["labels"], scores, [labels[i].get("container") or "unknown" for i in test["ids"]]
        ),
        "by_source": by_source,
        "_scores": (test["labels"], scores, test["ids"]),
    }


def score_items(
    examples: list[dict],
    labels: dict,
    loaded: dict[str, LoadedSignature],
    fusion: FusionModel | None,
    seed: int,
    split: str,
) -> tuple[list[dict], list[dict], np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The labelled items of `split` with their per-modality answers, targets, fused and content
    scores (NaN where nothing voted) and sources."""
    from models.fusion import fuse

    items = [
        e
        for e in examples
        if labels.get(e["content_id"], {}).get("label") in ("real", "synthetic")
        and item_split(labels[e["content_id"]], seed) == split
    ]
    answers = item_answers(loaded, items)
    targets = np.asarray([float(labels[e["content_id"]]["label"] == "synthetic") for e in items])
    fused_scores = [fuse(voting(item), fusion) for item in answers]
    fused = np.asarray([np.nan if f.fused is None else f.fused for f in fused_scores], dtype=np.float64)
    content = np.asarray([np.nan if f.content is None else f.content for f in fused_scores], dtype=np.float64)
    sources = [labels[e["content_id"]].get("source", "generator") for e in items]
    return items, answers, targets, fused, content, sources


def write_scores(path: Path, ids: list[str], targets, content, fused, sources: list[str]) -> None:
    """Labelled item scores, the input `training.thresholds` takes."""
    lines = [
        json.dumps(
            {
                "content_id": i,
                "label": int(y),
                "content_score": _nan_to_none(c),
                "fused_score": _nan_to_none(f),
                "source": s,
            }
        )
        for i, y, c, f, s in zip(ids, targets, content, fused, sources)
    ]
    path.write_text("\n".join(lines) + "\n")


def evaluate_items(
    examples: list[dict],
    labels: dict,
    model_dir: str,
    loaded: dict[str, LoadedSignature],
    seed: int,
    context: dict[str, dict],
    thresholds: dict[str, float],
) -> dict[str, Any]:
    """Item-level content and fused scores on the test split, overall, per slice and per source,
    with the rates at the policy's thresholds."""
    fusion: FusionModel | None = resolve_fusion(model_dir)
    test, answers, targets, fused, content, sources = score_items(examples, labels, loaded, fusion, seed, "test")
    per_modality_item_level = {}
    for modality in MODALITIES:
        present = np.asarray([a[modality] is not None for a in answers])
        values = np.asarray([a[modality].probability if a[modality] is not None else np.nan for a in answers])
        per_modality_item_level[modality] = {
            "all_items_missing_as_0_5": binary_metrics(targets, np.where(present, values, 0.5)),
            "items_with_modality": binary_metrics(targets[present], values[present]) if present.any() else {},
        }
    slices = {}
    for field in ("media_type", "country", "surface"):
        groups = [str(context.get(e["content_id"], {}).get(field) or e.get(field) or "unknown") for e in test]
        slices[field] = _breakdown(targets, np.nan_to_num(fused, nan=0.5), groups)
    families = [
        "+".join(sorted({f for f in (labels[e["content_id"]].get("families") or {}).values() if f})) or "real"
        for e in test
    ]
    at_policy = {"content": {k: v for k, v in thresholds.items() if k != "review_fused"},
                 "fused": {k: v for k, v in thresholds.items() if k == "review_fused"}}  # fmt: skip
    by_source = {}
    for source in sorted(set(sources)):
        mask = np.asarray([s == source for s in sources])
        by_source[source] = {
            "content": rates_at(targets[mask], content[mask], at_policy["content"]),
            "fused": rates_at(targets[mask], fused[mask], at_policy["fused"]),
            "no_content_evidence": float(np.isnan(content[mask]).mean()),
        }
    return {
        "fusion": f"{fusion.name}@{fusion.version}" if fusion else None,
        "test": binary_metrics(targets, np.nan_to_num(fused, nan=0.5)),
        # An item whose content modalities all abstained counts as content score 0: it cannot be removed.
        "content": binary_metrics(targets, np.nan_to_num(content, nan=0.0)),
        "no_content_evidence": float(np.isnan(content).mean()),
        "at_policy": {
            "thresholds": thresholds,
            "content": rates_at(targets, content, at_policy["content"]),
            "fused": rates_at(targets, fused, at_policy["fused"]),
        },
        "item_level_by_modality": per_modality_item_level,
        "by_generator_combination": _breakdown(targets, np.nan_to_num(fused, nan=0.5), families),
        "by_source": by_source,
        "slices": slices,
        "_scores": (targets, fused, content, [e["content_id"] for e in test], sources),
    }


def _train_and_load(modality: str, dataset: dict[str, dict], epochs: int, seed: int, scratch: Path) -> LoadedSignature:
    """Trains one modality on `dataset`, exports it with its domain gate, loads it to score."""
    model, facts = train_modality(modality, dataset, epochs, 32, seed, verbose=0)
    path = scratch / "model"
    export_saved_model(model, path, facts["calibration"]["scale"], facts["calibration"]["bias"])
    key = GATE_INPUT[modality]
    fit_gate(modality, dataset["train"]["inputs"][key], dataset["validation"]["inputs"][key]).save(path)
    return LoadedSignature(str(path))


def _scored(model: LoadedSignature, split: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and abstentions of a split."""
    if not len(split["labels"]):
        return np.zeros(0), np.zeros(0, bool)
    verdicts = judge_domain(model, split["inputs"])
    return score_split(model, split), np.asarray([bool(v and v.abstained) for v in verdicts])


def leave_one_family_out(
    examples: list[dict], labels: dict, seed: int, epochs: int, families: dict[str, list[str]]
) -> dict[str, Any]:
    """Trains without each family in turn and scores that family against real test items."""
    results: dict[str, Any] = defaultdict(dict)
    for modality, names in families.items():
        full = modality_dataset(examples, labels, modality, seed)
        for family in names:
            dataset = modality_dataset(examples, labels, modality, seed, exclude_families=[family])
            held = _subset_all_splits(full, [i for i, f in enumerate(_all_of(full, "families")) if f == family])
            real = _subset(full["test"], [i for i, f in enumerate(full["test"]["families"]) if f == "real"])
            with tempfile.TemporaryDirectory() as scratch:
                model = _train_and_load(modality, dataset, epochs, seed, Path(scratch))
                (held_scores, held_abstained), (real_scores, _) = _scored(model, held), _scored(model, real)
            targets = np.r_[np.ones(len(held["labels"])), np.zeros(len(real["labels"]))]
            results[modality][family] = binary_metrics(targets, np.r_[held_scores, real_scores]) | {
                "held_out_items": len(held["labels"]),
                "abstention_rate": float(held_abstained.mean()) if len(held_abstained) else None,
            }
            print(f"[lofo] {modality}/{family}: auc={results[modality][family]['auc']}", file=sys.stderr)
    return dict(results)


def leave_one_source_out(
    examples: list[dict], labels: dict, seed: int, epochs: int, sources: list[str], thresholds: dict[str, float]
) -> dict[str, Any]:
    """Trains the modality each source feeds without it, scores all of its items against the
    other class's test items from elsewhere, and the rates at the policy's content thresholds
    (an item the model abstains on is not flagged)."""
    from training.sources import BY_NAME

    content_thresholds = {k: v for k, v in thresholds.items() if k != "review_fused"}
    results: dict[str, Any] = {}
    for name in sources:
        group = held_out_group(name)
        modalities = {SOURCE_MODALITY[BY_NAME[member].kind] for member in group}
        if len(modalities) != 1:
            raise ValueError(f"{name}: the sources held out together must feed one modality")
        (modality,) = modalities
        full = modality_dataset(examples, labels, modality, seed)
        held_indices = [i for i, s in enumerate(_all_of(full, "sources")) if s in group]
        if not held_indices:
            results[name] = {"modality": modality, "held_out_items": 0}
            continue
        held = _subset_all_splits(full, held_indices)
        held_label = round(float(held["labels"].mean()))
        other = _subset(
            full["test"],
            [i for i, (s, y) in enumerate(zip(full["test"]["sources"], full["test"]["labels"]))
             if s not in group and int(y) != held_label],
        )  # fmt: skip
        dataset = modality_dataset(examples, labels, modality, seed, exclude_sources=group)
        with tempfile.TemporaryDirectory() as scratch:
            model = _train_and_load(modality, dataset, epochs, seed, Path(scratch))
            (held_scores, held_abstained), (other_scores, other_abstained) = _scored(model, held), _scored(model, other)
        targets = np.r_[held["labels"], other["labels"]]
        scores = np.r_[held_scores, other_scores]
        voting_scores = np.where(np.r_[held_abstained, other_abstained], np.nan, scores)
        results[name] = {
            "modality": modality,
            "label": "synthetic" if held_label else "real",
            "held_out_items": len(held["labels"]),
            "against": f"{len(other['labels'])} {'real' if held_label else 'synthetic'} test items from elsewhere",
            "metrics": binary_metrics(targets, scores),
            "abstention_rate": float(held_abstained.mean()),
            "at_policy": rates_at(held["labels"].astype(bool), voting_scores[: len(held_scores)], content_thresholds),
        }
        print(f"[loso] {modality}/{name}: auc={results[name]['metrics']['auc']} "
              f"abstained={results[name]['abstention_rate']:.2f}", file=sys.stderr)  # fmt: skip
    return results


def held_out_group(name: str) -> list[str]:
    """The sources a leave-one-source-out run holds out for `name`: "a+b" holds several out
    together, and a picture generator takes with it every source it re-drew (trained without
    a generator means without any of its output: `gan_redraw` takes `face_video_redrawn`)."""
    from training.sources import BY_NAME

    named = name.split("+")
    unknown = [member for member in named if member not in BY_NAME]
    if unknown:
        raise ValueError(f"{name}: no such source {unknown} (python -m training.sources list)")
    made_by = [source.name for source in BY_NAME.values() if source.redrawn_by in named]
    return [*named, *(member for member in made_by if member not in named)]


def _all_of(dataset: dict[str, dict], key: str) -> list[str]:
    return [value for split in ("train", "validation", "test") for value in dataset[split][key]]


def _subset(split: dict[str, Any], indices: list[int]) -> dict[str, Any]:
    return {
        "inputs": {k: v[indices] for k, v in split["inputs"].items()},
        "labels": split["labels"][indices],
        "ids": [split["ids"][i] for i in indices],
        "families": [split["families"][i] for i in indices],
        "sources": [split["sources"][i] for i in indices],
    }


def _subset_all_splits(dataset: dict[str, dict], indices: list[int]) -> dict[str, Any]:
    """Items at `indices` of the train+validation+test concatenation (a held-out family or
    source was never seen in training, so all of its items are fair to score)."""
    splits = [s for s in ("train", "validation", "test") if len(dataset[s]["labels"])]
    merged = {
        "inputs": {k: np.concatenate([dataset[s]["inputs"][k] for s in splits]) for k in dataset["train"]["inputs"]},
        "labels": np.concatenate([dataset[s]["labels"] for s in splits]),
        "ids": _all_of(dataset, "ids"),
        "families": _all_of(dataset, "families"),
        "sources": _all_of(dataset, "sources"),
    }
    return _subset(merged, indices)


def _strip_private(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_private(v) for k, v in value.items() if not k.startswith("_")}
    return value


def _nan_to_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    # The warehouse whose features to read (or a folder or glob of its TFRecord/Parquet files).
    add_flags(parser, "warehouse", "bigquery_endpoint", required=("warehouse",))
    parser.add_argument("--labels", required=True, nargs="+", help="labels.jsonl file(s): label, <modality>_label.")
    parser.add_argument("--model_dir", required=True, help="Model directory (newest version of each is evaluated).")
    parser.add_argument("--out", required=True, help="Report directory: report.json, test_scores.jsonl, PNG plots.")
    add_flags(parser, "policy")  # the live policy
    parser.add_argument("--input", nargs="*", default=None, help="Upload event manifests, for slices by country and "
                        "surface (default: manifest.jsonl beside each labels file, if present).")  # fmt: skip
    parser.add_argument("--leave_one_family_out", action="store_true", help="Also retrain without each family.")
    parser.add_argument("--leave_one_source_out", action="store_true", help="Also retrain without each source.")
    parser.add_argument("--lofo_epochs", type=int, default=60, help="Epoch bound for the held-out runs' models.")
    parser.add_argument(
        "--lofo_modalities", nargs="*", choices=MODALITIES, default=list(MODALITIES), help="Modalities to hold out in."
    )
    parser.add_argument(
        "--loso_sources", nargs="*", default=None,
        help="Sources to hold out, one run each; a+b holds several out together, a generator the sources it "
        "re-drew (default: each in the data).",
    )  # fmt: skip
    args = parser.parse_args(argv)

    try:
        examples, files = read_features(args.warehouse, args.bigquery_endpoint)
    except ValueError as exc:
        parser.error(f"--warehouse: {exc}")
    labels = load_labels(args.labels)
    cards = {m: resolve_model(args.model_dir, m) for m in MODALITIES}
    missing = [m for m, card in cards.items() if card is None]
    if missing:
        parser.error(f"--model_dir: no model for {missing}")
    seed = int(cards["visual"].card.get("training_data", {}).get("seed", 7))
    manifests = (
        [Path(m) for m in args.input] if args.input else [Path(p).with_name("manifest.jsonl") for p in args.labels]
    )
    context = {}
    for manifest in manifests:
        if manifest.exists():
            rows = map(json.loads, filter(str.strip, manifest.read_text().splitlines()))
            context.update({r["content_id"]: r for r in rows})
    thresholds = policy_thresholds(args.policy)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"features": files, "labels": args.labels, "model_dir": args.model_dir, "seed": seed,
                              "policy": args.policy}  # fmt: skip
    loaded = {m: LoadedSignature(cards[m].path) for m in MODALITIES}  # each SavedModel loaded once
    report["modalities"] = {m: evaluate_modality(m, examples, labels, cards[m], loaded[m], seed) for m in MODALITIES}
    report["fused"] = evaluate_items(examples, labels, args.model_dir, loaded, seed, context, thresholds)
    if args.leave_one_family_out:
        families = {m: sorted(report["modalities"][m]["by_family"]) for m in args.lofo_modalities}
        generator_families = {m: [f for f in names if f not in _source_names()] for m, names in families.items()}
        report["leave_one_family_out"] = leave_one_family_out(
            examples, labels, seed, args.lofo_epochs, generator_families
        )
    if args.leave_one_source_out:
        present = {item_source(row, m) for row in labels.values() for m in ("visual", "audio")}
        names = args.loso_sources if args.loso_sources is not None else sorted(present & set(_source_names()))
        report["leave_one_source_out"] = leave_one_source_out(
            examples, labels, seed, args.lofo_epochs, names, thresholds
        )

    curves = {m: report["modalities"][m]["_scores"][:2] for m in MODALITIES}
    targets, fused, content, ids, sources = report["fused"]["_scores"]
    curves["content (items)"] = (targets, np.nan_to_num(content, nan=0.0))
    curves["fused (items)"] = (targets, np.nan_to_num(fused, nan=0.5))
    report["plots"] = plot_report(curves, out)
    # Thresholds are chosen on the validation split's scores and checked on the test split's.
    write_scores(out / "test_scores.jsonl", ids, targets, content, fused, sources)
    items, _, targets, fused, content, sources = score_items(
        examples, labels, loaded, resolve_fusion(args.model_dir), seed, "validation"
    )
    write_scores(out / "validation_scores.jsonl", [e["content_id"] for e in items], targets, content, fused, sources)
    (out / "report.json").write_text(json.dumps(_strip_private(report), indent=2, default=str) + "\n")
    print(summary_table(report))
    print(f"report: {out / 'report.json'}")
    return 0


def _source_names() -> list[str]:
    from training.sources import BY_NAME

    return list(BY_NAME)


def summary_table(report: dict[str, Any]) -> str:
    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else "-"

    lines = ["                    auc    eer    ap     recall@1%fpr  abstained"]
    rows = [(m, report["modalities"][m]["test"], report["modalities"][m]["abstention_rate"]) for m in MODALITIES]
    rows.append(("content (items)", report["fused"]["content"], report["fused"]["no_content_evidence"]))
    rows.append(("fused (items)", report["fused"]["test"], None))
    for name, metrics, abstained in rows:
        at_1 = (metrics.get("at_fpr_1pct") or {}).get("recall")
        lines.append(
            f"{name:<18} {fmt(metrics['auc'])}  {fmt(metrics['eer'])}  "
            f"{fmt(metrics['average_precision'])}  {fmt(at_1)}         {fmt(abstained)}   (n={metrics['count']})"
        )
    for modality, families in report.get("leave_one_family_out", {}).items():
        for family, metrics in families.items():
            lines.append(f"held out {modality}/{family:<10} auc {fmt(metrics['auc'])} (n={metrics['held_out_items']})")
    for name, result in report.get("leave_one_source_out", {}).items():
        if result.get("held_out_items"):
            lines.append(
                f"held out source {name:<16} auc {fmt(result['metrics']['auc'])} "
                f"abstained {fmt(result['abstention_rate'])} (n={result['held_out_items']})"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run())
