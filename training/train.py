"""Train the per-modality detectors and the fusion on the features the pipeline wrote.

    python -m training.train --warehouse WAREHOUSE --labels LABELS.jsonl --out MODEL_DIR

Reads the features the batch job wrote: `tf.train.Example`s (`WAREHOUSE/features_tfrecord/`)
or the `features` Parquet table, joins them with ground-truth labels by content_id, and
splits by content_id (never by frame or window, so no item straddles splits). Each modality
is trained with early stopping, calibrated on the validation split (Platt scaling, shipped
inside the SavedModel) and exported to `MODEL_DIR/<modality>/<version>/` with a model card.
With every modality trained, the fusion is fitted on the validation split's calibrated scores
and written to `MODEL_DIR/fusion/<version>/`.

    python -m training.train ... --out MODEL_DIR --modality visual --keep_from REGISTRY

trains one modality and keeps the others as REGISTRY serves them: their versions are copied
into MODEL_DIR and the fusion is fitted over them and the new one. A release that retrains one
detector leaves the others' figures exactly as they were (their inputs must still be computed
as when they were trained: `models.signature.INPUTS_SINCE`).
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from models.audio_layout import AUDIO
from models.domain import GATE_INPUT, fit_gate
from models.examples import example_from_feature_row, item_source, load_labels, read_examples, read_parquet_examples
from models.fusion import COEFFICIENT_BOUNDS, CONTEXT_LOGIT_BOUND, FUSION_FEATURES, fit_fusion, fusion_inputs
from models.handlers import LoadedSignature, ModelAnswer, judge_domain, predict_probabilities
from models.metadata_layout import METADATA
from models.registry import export_saved_model, write_card
from models.signature import FEATURE_VERSION, OUTPUT_NAME, SIGNATURES
from models.visual_layout import VISUAL
from pipelines.options import StrictParser, add_flags
from schemas.vocabulary import MODALITIES
from training import architectures
from training import trees as tree_ensembles
from training.architectures import NORMALISED_INPUT, TREE_INPUT, build_model, with_trees
from training.metrics import binary_metrics, fit_platt, operating_points
from training.resume import fingerprint, holds_stopped_training, resumable, source_digest
from training.splits import SPLIT_DOC, SPLITS, item_split
from training.trees import cross_fitted_logits, fit_trees

# Under --out: each modality's stopped training, kept to resume (training.resume).
RESUME_FOLDER = ".resume"


def feature_files(features: str) -> list[str]:
    """TFRecord or Parquet files: a warehouse dir, a dir of either, or a glob."""
    path = Path(features)
    if path.is_dir():
        for candidate in (path / "features_tfrecord", path / "features", path):
            files = sorted(str(p) for p in candidate.glob("*.tfrecord*")) or sorted(
                str(p) for p in candidate.glob("*.parquet")
            )
            if files:
                return files
        return []
    return sorted(glob.glob(features))


def read_bigquery_examples(uri: str, feature_version: str, endpoint: str | None = None) -> list[dict[str, object]]:
    """The `features` rows of one feature version in a BigQuery warehouse (`bq://PROJECT.DATASET`),
    as model-input dicts: the same dicts the Parquet files give (Arrow either way).

    Raises:
        ValueError: the dataset holds no features of this version (naming the ones it holds).
    """
    from warehouse.bigquery import BigQueryLocation, query_arrow

    location = BigQueryLocation.parse(uri, endpoint)
    table = location.sql_name("features")
    rows = query_arrow(location, f"SELECT * FROM {table} WHERE feature_version = @v", {"v": feature_version})
    if rows.num_rows == 0:
        held = query_arrow(location, f"SELECT DISTINCT feature_version FROM {table}").column(0).to_pylist()
        raise ValueError(f"{uri}: no features of version {feature_version} (it holds {sorted(held)})")
    return [example_from_feature_row(row) for row in rows.to_pylist()]


def read_features(features: str, bigquery_endpoint: str | None = None) -> tuple[list[dict], list[str]]:
    """The examples `--warehouse` names and where they came from: TFRecord or Parquet files (a
    warehouse dir, a dir of either, or a glob), or a BigQuery warehouse's `features` table
    (`bq://PROJECT.DATASET`, this code's feature version only).

    Raises:
        ValueError: nothing to read there.
    """
    from warehouse.bigquery import is_bigquery_uri

    if is_bigquery_uri(features):
        return read_bigquery_examples(features, FEATURE_VERSION, bigquery_endpoint), [features]
    files = feature_files(features)
    if not files:
        raise ValueError(f"no TFRecord or Parquet files found at {features}")
    return load_examples(files), files


def load_examples(files: list[str]) -> list[dict]:
    """Examples from TFRecord files, or from `features` Parquet files (same dicts either way)."""
    parquet = [f for f in files if f.endswith(".parquet")]
    records = [f for f in files if not f.endswith(".parquet")]
    return read_examples(records) + read_parquet_examples(parquet)


def modality_dataset(
    examples: Iterable[dict],
    labels: dict[str, dict],
    modality: str,
    seed: int,
    exclude_families: Iterable[str] = (),
    exclude_sources: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """Per split: stacked inputs, labels, content ids, families and sources of items with `modality`.

    Items of `exclude_families` or whose `modality` content came from `exclude_sources` are
    left out of every split: the held-out runs train and calibrate without ever seeing them.
    """
    excluded, excluded_sources = set(exclude_families), set(exclude_sources)
    by_split: dict[str, dict[str, list]] = {
        s: {"inputs": [], "labels": [], "ids": [], "families": [], "sources": []} for s in SPLITS
    }
    for example in examples:
        label_row = labels.get(example["content_id"])
        if modality not in example or label_row is None or label_row.get(f"{modality}_label") is None:
            continue
        family = (label_row.get("families") or {}).get(modality) or "real"
        source = item_source(label_row, modality)
        if family in excluded or source in excluded_sources:
            continue
        bucket = by_split[item_split(label_row, seed)]
        bucket["inputs"].append(example[modality])
        bucket["labels"].append(float(label_row[f"{modality}_label"]))
        bucket["ids"].append(example["content_id"])
        bucket["families"].append(family)
        bucket["sources"].append(source)
    return {split: _stack(modality, bucket) for split, bucket in by_split.items()}


def _stack(modality: str, bucket: dict[str, list]) -> dict[str, Any]:
    names = [s.name for s in SIGNATURES[modality]]
    inputs = {n: np.stack([x[n] for x in bucket["inputs"]]) if bucket["inputs"] else None for n in names}
    return {
        "inputs": inputs,
        "labels": np.asarray(bucket["labels"], np.float32),
        "ids": bucket["ids"],
        "families": bucket["families"],
        "sources": bucket["sources"],
    }


def train_modality(
    modality: str,
    dataset: dict[str, dict[str, Any]],
    epochs: int,
    batch_size: int,
    seed: int,
    verbose: int,
    resume_dir: Path | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Trains one detector; returns the served Keras model and what its card should say.

    Boosted trees over the hand-made signals come first (tree count chosen on validation);
    the network then trains with the trees' cross-fitted logit as one of its branches, and the
    served model computes that logit with the trees themselves. Platt calibration is fitted on
    the validation split's served logits. With `resume_dir`, the network's training backs
    itself up there at each epoch's end and a stopped run goes on from it (`training.resume`).
    """
    import keras

    keras.utils.set_random_seed(seed)
    train, validation = dataset["train"], dataset["validation"]
    if len(train["labels"]) < 4 or len(set(train["labels"].tolist())) < 2:
        raise ValueError(f"{modality}: too few labelled training items ({len(train['labels'])}) or one class only")
    key = NORMALISED_INPUT[modality]
    has_validation = len(validation["labels"]) > 0
    trees = fit_trees(
        train["inputs"][key],
        train["labels"],
        validation["inputs"][key] if has_validation else train["inputs"][key][:0],
        validation["labels"],
        seed,
    )

    def with_tree_logits(split: dict[str, Any], logits: np.ndarray) -> dict[str, np.ndarray]:
        return {**split["inputs"], TREE_INPUT: logits.reshape(-1, 1).astype(np.float32)}

    network = build_model(modality, train["inputs"][key])
    network.compile(
        optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-3),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.AUC(name="auc", from_logits=True)],
    )
    positives = float(train["labels"].mean())
    class_weight = {0: 0.5 / max(1 - positives, 1e-3), 1: 0.5 / max(positives, 1e-3)}
    early_stopping = (
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=6, restore_best_weights=True)
        if has_validation
        else None
    )
    if resume_dir is not None:
        callbacks = resumable(early_stopping, resume_dir)
    else:
        callbacks = [early_stopping] if early_stopping else []
    train_tree_logits = cross_fitted_logits(train["inputs"][key], train["labels"], trees.tree_count, seed)
    history = network.fit(
        with_tree_logits(train, train_tree_logits),
        train["labels"],
        validation_data=(
            (with_tree_logits(validation, trees.predict(validation["inputs"][key])), validation["labels"])
            if has_validation
            else None
        ),
        epochs=epochs,
        batch_size=batch_size,
        class_weight=class_weight,
        callbacks=callbacks,
        verbose=verbose,
    )
    model = with_trees(modality, network, trees)
    calibration_split = validation if has_validation else train
    logits = model.predict(calibration_split["inputs"], verbose=0).reshape(-1)
    scale, bias = fit_platt(logits, calibration_split["labels"])
    return model, {
        "epochs_run": len(history.history["loss"]),
        "trees": {"count": trees.tree_count, "depth": trees.depth, "input": key},
        "calibration": {"method": "platt", "scale": scale, "bias": bias, "fitted_on": "validation"},
    }


def score_split(model: LoadedSignature | Path, split: dict[str, Any]) -> np.ndarray:
    """Calibrated probabilities of an exported SavedModel (what will be served) on a split."""
    if len(split["labels"]) == 0:
        return np.zeros((0,), np.float32)
    loaded = model if isinstance(model, LoadedSignature) else LoadedSignature(str(model))
    return predict_probabilities(loaded, split["inputs"])


def export_modality(
    modality: str,
    model: Any,
    facts: dict[str, Any],
    dataset: dict[str, dict[str, Any]],
    out: Path,
    version: str,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """Exports one trained modality with its card; returns the card."""
    path = out / modality / version
    path.mkdir(parents=True, exist_ok=True)
    calibration = facts["calibration"]
    export_saved_model(model, path, calibration["scale"], calibration["bias"])
    gate_input = GATE_INPUT[modality]
    gate = fit_gate(
        modality,
        dataset["train"]["inputs"][gate_input],
        dataset["validation"]["inputs"][gate_input] if len(dataset["validation"]["labels"]) else np.zeros((0,)),
        signal_names={"visual": VISUAL, "audio": AUDIO, "metadata": METADATA}[modality].signal_names(),
    )
    gate.save(path)
    served = LoadedSignature(str(path))
    scores = {split: score_split(served, dataset[split]) for split in ("validation", "test")}
    metrics = {
        split: binary_metrics(dataset[split]["labels"], probabilities) if len(probabilities) else {"count": 0}
        for split, probabilities in scores.items()
    }
    validation_scores = scores["validation"]
    card = {
        "name": f"{modality}_detector",
        "modality": modality,
        "version": version,
        "architecture": model.name,
        "feature_version": FEATURE_VERSION,
        "serving_signature": {
            "name": "serving_default",
            "inputs": [s.to_dict() for s in SIGNATURES[modality]],
            "outputs": [
                {"name": OUTPUT_NAME, "dtype": "float32", "shape": [None], "meaning": "calibrated P(synthetic)"},
                {"name": "logit", "dtype": "float32", "shape": [None], "meaning": "uncalibrated logit"},
            ],
            "aggregation": "learned weighting of per-branch masked means of per-part logits, a hand-made-signal "
            "network logit and a boosted-tree logit"
            if modality != "metadata"
            else "none (one vector per item); network and boosted-tree logits weighted",
        },
        "training_data": {**provenance, "sizes": {s: len(dataset[s]["labels"]) for s in SPLITS}},
        "training": {"epochs_run": facts["epochs_run"], "boosted_trees": facts["trees"]},
        "calibration": facts["calibration"],
        "domain_gate": gate.card()
        | {
            "abstention_rate": {
                split: float(np.mean(gate.distances(dataset[split]["inputs"][gate_input]) > gate.threshold))
                if len(dataset[split]["labels"])
                else None
                for split in ("validation", "test")
            }
        },
        "metrics": metrics,
        "recommended_operating_points": operating_points(dataset["validation"]["labels"], validation_scores),
    }
    write_card(path, card)
    return card


def keep_served(registry: str, modalities: Iterable[str], out: Path) -> dict[str, str]:
    """Copies the versions `registry` serves of `modalities` into `out` (beside what is
    trained there); returns each one's version.

    Raises:
        ValueError: the registry serves no model of one of them, or one whose inputs the
            pipeline no longer computes as when it was trained.
    """
    from models import storage
    from models.registry import resolve_model

    kept = {}
    for modality in modalities:
        served = resolve_model(registry, modality)
        if served is None:
            raise ValueError(f"{registry} serves no {modality} model")
        target = out / modality / served.version
        if not target.exists():
            storage.copy_tree(served.path, str(target))
        kept[modality] = served.version
    return kept


def train_fusion(
    examples: list[dict], labels: dict[str, dict], out: Path, version: str, seed: int, provenance: dict[str, Any],
    model_versions: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """Fits the fusion over the models `out/<modality>/<model_versions[modality]>` on the
    validation split's calibrated scores; test metrics on test.

    Modalities that abstain on an item are left out of its fusion inputs, as in serving.
    """
    from models.fusion import FusionModel

    loaded = {m: LoadedSignature(str(out / m / model_versions[m])) for m in MODALITIES}
    rows: dict[str, list] = {s: [] for s in SPLITS}
    for example in examples:
        label_row = labels.get(example["content_id"])
        if label_row is None or label_row.get("label") not in ("real", "synthetic"):
            continue
        rows[item_split(label_row, seed)].append((example, float(label_row["label"] == "synthetic")))
    matrices = {}
    for split, items in rows.items():
        votes = [voting(answers) for answers in item_answers(loaded, [example for example, _ in items])]
        features = np.stack([fusion_inputs(v) for v in votes]) if items else np.zeros((0, len(FUSION_FEATURES)))
        matrices[split] = (features, np.asarray([y for _, y in items]), votes)
    fusion = fit_fusion(matrices["validation"][0], matrices["validation"][1], "fusion_logistic", version)
    path = out / "fusion" / version
    fusion.save(path)
    metrics = {}
    for split in ("validation", "test"):
        _, targets, votes = matrices[split]
        fused = [fusion.predict(v) for v in votes]
        metrics[split] = binary_metrics(targets, np.asarray([0.5 if f is None else f for f in fused]))
    card = {
        "name": fusion.name,
        "modality": "fusion",
        "version": version,
        "inputs": list(FUSION_FEATURES),
        "method": "L2-regularised logistic regression over the content logit (the strongest voting visual or "
        "audio probability) and the metadata logit clipped to +-context_logit_bound, with bounded coefficients",
        "coefficients": dict(zip(FUSION_FEATURES, fusion.coefficients)),
        "coefficient_bounds": {k: list(v) for k, v in COEFFICIENT_BOUNDS.items()},
        "context_logit_bound": CONTEXT_LOGIT_BOUND,
        "intercept": fusion.intercept,
        "modality_versions": dict(model_versions),
        "training_data": {**provenance, "fitted_on": "validation", "label": "item label == synthetic"},
        "metrics": metrics,
    }
    write_card(path, card)
    FusionModel.load(path)  # what the pipeline will read must load
    return card


def item_answers(loaded: dict[str, LoadedSignature], examples: list[dict]) -> list[dict[str, ModelAnswer | None]]:
    """Per item, each modality's answer (probability and domain verdict; None where the item
    lacks the modality), exactly as the pipeline's handler gives it."""
    result: list[dict[str, ModelAnswer | None]] = [{m: None for m in loaded} for _ in examples]
    for modality, model in loaded.items():
        indices = [i for i, e in enumerate(examples) if modality in e]
        if not indices:
            continue
        stacked = {s.name: np.stack([examples[i][modality][s.name] for i in indices]) for s in SIGNATURES[modality]}
        answers = zip(predict_probabilities(model, stacked), judge_domain(model, stacked))
        for index, (probability, verdict) in zip(indices, answers):
            result[index][modality] = ModelAnswer(float(probability), verdict)
    return result


def voting(answers: dict[str, ModelAnswer | None]) -> dict[str, float | None]:
    """The probabilities that vote: a modality that is missing or abstained counts as None."""
    return {
        m: (None if a is None or (a.domain is not None and a.domain.abstained) else a.probability)
        for m, a in answers.items()
    }


def item_probabilities(loaded: dict[str, LoadedSignature], examples: list[dict]) -> list[dict[str, float | None]]:
    """Per item, each modality's calibrated probability (None where the item lacks it)."""
    return [
        {m: (a.probability if a else None) for m, a in answers.items()} for answers in item_answers(loaded, examples)
    ]


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    # The warehouse whose features to read (or a folder or glob of its TFRecord/Parquet files).
    add_flags(parser, "warehouse", "bigquery_endpoint", required=("warehouse",))
    parser.add_argument(
        "--labels", required=True, nargs="+", help="labels.jsonl file(s) with content_id, label and <modality>_label."
    )
    parser.add_argument("--out", required=True, help="Model directory: writes <modality>/<version>/.")
    parser.add_argument("--modality", choices=(*MODALITIES, "all"), default="all")
    parser.add_argument("--epochs", type=int, default=60, help="Upper bound; early stopping ends sooner.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7, help="Sets the split (and, without --init_seed, the training).")
    parser.add_argument(
        "--init_seed",
        type=int,
        default=None,
        help="Seed of the training alone (weights, tree subsampling, cross-fitting folds) on --seed's split: "
        "trainings that differ only in this measure training noise.",
    )
    parser.add_argument("--version", default=None, help="Version name (default: UTC timestamp, sorts newest last).")
    parser.add_argument("--exclude_families", nargs="*", default=(), help="Generator families to train without.")
    parser.add_argument("--exclude_sources", nargs="*", default=(), help="Sources (training.sources) to train without.")
    parser.add_argument(
        "--keep_from",
        default=None,
        help="A model registry: the modalities not trained (--modality) are copied from what it serves, "
        "and the fusion is fitted over them and the one trained.",
    )
    parser.add_argument("--quiet", action="store_true", help="No per-epoch progress.")
    args = parser.parse_args(argv)
    if args.keep_from and args.modality == "all":
        parser.error("--keep_from keeps the modalities not trained: name the one to train with --modality")

    try:
        examples, files = read_features(args.warehouse, args.bigquery_endpoint)
    except ValueError as exc:
        parser.error(f"--warehouse: {exc}")
    stale = {e["feature_version"] for e in examples} - {FEATURE_VERSION}
    if stale:
        parser.error(f"--warehouse: written with feature version(s) {sorted(stale)}, this code reads {FEATURE_VERSION}")
    labels = load_labels(args.labels)
    version = args.version or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    modalities = MODALITIES if args.modality == "all" else (args.modality,)
    out = Path(args.out)
    init_seed = args.seed if args.init_seed is None else args.init_seed
    provenance = {"features": files, "labels": args.labels, "split": SPLIT_DOC, "seed": args.seed,
                  "init_seed": init_seed,
                  "excluded_families": list(args.exclude_families),
                  "excluded_sources": list(args.exclude_sources)}  # fmt: skip
    print(f"{len(examples)} examples from {len(files)} file(s), {len(labels)} labels", file=sys.stderr)

    kept: dict[str, str] = {}
    if args.keep_from:  # before training: a registry that cannot be kept fails fast
        try:
            kept = keep_served(args.keep_from, [m for m in MODALITIES if m not in modalities], out)
        except ValueError as exc:
            parser.error(f"--keep_from: {exc}")
    # A stopped training of other network or tree code starts afresh.
    network_code = source_digest(architectures, tree_ensembles, sys.modules[__name__])
    for modality in modalities:
        dataset = modality_dataset(examples, labels, modality, args.seed, args.exclude_families, args.exclude_sources)
        print(f"[{modality}] split sizes { {s: len(dataset[s]['labels']) for s in SPLITS} }", file=sys.stderr)
        # Same data, seed and settings: a stopped training of this modality resumes.
        resume_facts = {"modality": modality, "feature_version": FEATURE_VERSION, "provenance": provenance,
                        "epochs": args.epochs, "batch_size": args.batch_size,
                        "code": network_code,
                        "items": {s: [dataset[s]["ids"], dataset[s]["labels"].tolist()] for s in SPLITS}}  # fmt: skip
        resume_dir = out / RESUME_FOLDER / f"{modality}-{fingerprint(resume_facts)}"
        if holds_stopped_training(resume_dir):
            print(f"[{modality}] resuming the stopped training kept in {resume_dir}", file=sys.stderr)
        model, facts = train_modality(
            modality, dataset, args.epochs, args.batch_size, init_seed, 0 if args.quiet else 2, resume_dir
        )
        card = export_modality(modality, model, facts, dataset, out, version, provenance)
        print(
            f"[{modality}] exported {out / modality / version}  test {_short(card['metrics']['test'])}", file=sys.stderr
        )
    fused_over = {m: kept.get(m, version) for m in MODALITIES}
    if all((out / m / v / "saved_model.pb").exists() for m, v in fused_over.items()):
        card = train_fusion(examples, labels, out, version, args.seed, provenance, fused_over)
        print(f"[fusion] exported {out / 'fusion' / version}  test {_short(card['metrics']['test'])}", file=sys.stderr)
    return 0


def _short(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


if __name__ == "__main__":
    sys.exit(run())
