"""Train the per-modality detectors on the features the pipeline wrote.

    python -m models.train --features WAREHOUSE --labels LABELS.jsonl --out MODEL_DIR

Reads the `tf.train.Example`s the batch job wrote (`WAREHOUSE/features_tfrecord/`), joins
them with ground-truth labels by content_id, splits by content_id (never by frame or
window, so no item straddles splits), trains each modality's model with early stopping,
calibrates it on the validation split (Platt scaling, shipped inside the SavedModel), and
exports `MODEL_DIR/<modality>/<version>/` with a model card.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from models.architectures import NORMALISED_INPUT, build_model
from models.examples import read_examples
from models.metrics import binary_metrics, fit_platt
from models.registry import export_saved_model, write_card
from models.signature import FEATURE_VERSION, OUTPUT_NAME, SIGNATURES
from schemas.records import MODALITIES

SPLITS = ("train", "validation", "test")


def split_of(content_id: str, seed: int, fractions: tuple[float, float] = (0.7, 0.15)) -> str:
    """Deterministic split by content id: the same item lands in the same split every run."""
    digest = hashlib.sha256(f"{seed}:{content_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < fractions[0]:
        return "train"
    return "validation" if position < fractions[0] + fractions[1] else "test"


def load_labels(path: str) -> dict[str, dict[str, Any]]:
    labels = {}
    with open(path) as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                labels[row["content_id"]] = row
    return labels


def feature_files(features: str) -> list[str]:
    """TFRecord files from a warehouse directory, a directory of TFRecords, or a glob."""
    path = Path(features)
    if path.is_dir():
        nested = path / "features_tfrecord"
        path = nested if nested.is_dir() else path
        return sorted(str(p) for p in path.glob("*.tfrecord*"))
    return sorted(glob.glob(features))


def modality_dataset(
    examples: list[dict], labels: dict[str, dict], modality: str, seed: int
) -> dict[str, dict[str, Any]]:
    """Per split: stacked inputs, labels and content ids for items that carry `modality`."""
    by_split: dict[str, dict[str, list]] = {s: {"inputs": [], "labels": [], "ids": []} for s in SPLITS}
    for example in examples:
        label_row = labels.get(example["content_id"])
        if modality not in example or label_row is None:
            continue
        target = label_row.get(f"{modality}_label")
        if target is None:
            continue
        bucket = by_split[split_of(example["content_id"], seed)]
        bucket["inputs"].append(example[modality])
        bucket["labels"].append(float(target))
        bucket["ids"].append(example["content_id"])
    dataset = {}
    for split, bucket in by_split.items():
        names = [s.name for s in SIGNATURES[modality]]
        inputs = {n: np.stack([x[n] for x in bucket["inputs"]]) if bucket["inputs"] else None for n in names}
        dataset[split] = {"inputs": inputs, "labels": np.asarray(bucket["labels"], np.float32), "ids": bucket["ids"]}
    return dataset


def train_modality(
    modality: str, dataset: dict[str, dict[str, Any]], epochs: int, batch_size: int, seed: int, verbose: int
) -> tuple[Any, dict[str, Any]]:
    """Trains one detector; returns the Keras model and what its card should say."""
    import keras

    keras.utils.set_random_seed(seed)
    train, validation = dataset["train"], dataset["validation"]
    if len(train["labels"]) < 4 or len(set(train["labels"].tolist())) < 2:
        raise ValueError(f"{modality}: too few labelled training items ({len(train['labels'])}) or one class only")
    model = build_model(modality, train["inputs"][NORMALISED_INPUT[modality]])
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.AUC(name="auc", from_logits=True)],
    )
    positives = float(train["labels"].mean())
    class_weight = {0: 0.5 / max(1 - positives, 1e-3), 1: 0.5 / max(positives, 1e-3)}
    has_validation = len(validation["labels"]) > 0
    callbacks = (
        [keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)]
        if has_validation
        else []
    )
    history = model.fit(
        train["inputs"],
        train["labels"],
        validation_data=(validation["inputs"], validation["labels"]) if has_validation else None,
        epochs=epochs,
        batch_size=batch_size,
        class_weight=class_weight,
        callbacks=callbacks,
        verbose=verbose,
    )
    calibration_split = validation if has_validation else train
    logits = model.predict(calibration_split["inputs"], verbose=0).reshape(-1)
    scale, bias = fit_platt(logits, calibration_split["labels"])
    return model, {
        "epochs_run": len(history.history["loss"]),
        "calibration": {"method": "platt", "scale": scale, "bias": bias, "fitted_on": "validation"},
    }


def evaluate_exported(path: Path, split: dict[str, Any]) -> dict[str, Any]:
    """Metrics of the exported, calibrated SavedModel itself (what will be served)."""
    import tensorflow as tf

    if len(split["labels"]) == 0:
        return {"count": 0}
    serving = tf.saved_model.load(str(path)).signatures["serving_default"]
    probabilities = serving(**{k: tf.constant(v) for k, v in split["inputs"].items()})[OUTPUT_NAME].numpy()
    return binary_metrics(split["labels"], probabilities)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", required=True, help="Warehouse dir, TFRecord dir, or a glob of TFRecord files.")
    parser.add_argument("--labels", required=True, help="labels.jsonl with content_id and <modality>_label.")
    parser.add_argument("--out", required=True, help="Model directory: writes <modality>/<version>/.")
    parser.add_argument("--modality", choices=(*MODALITIES, "all"), default="all")
    parser.add_argument("--epochs", type=int, default=40, help="Upper bound; early stopping ends sooner.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--version", default=None, help="Version name (default: UTC timestamp, sorts newest last).")
    parser.add_argument("--quiet", action="store_true", help="No per-epoch progress.")
    args = parser.parse_args(argv)

    files = feature_files(args.features)
    if not files:
        parser.error(f"--features: no TFRecord files found at {args.features}")
    examples = read_examples(files)
    stale = {e["feature_version"] for e in examples} - {FEATURE_VERSION}
    if stale:
        parser.error(f"--features: written with feature version(s) {sorted(stale)}, this code reads {FEATURE_VERSION}")
    labels = load_labels(args.labels)
    version = args.version or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    modalities = MODALITIES if args.modality == "all" else (args.modality,)
    print(f"{len(examples)} examples from {len(files)} file(s), {len(labels)} labels", file=sys.stderr)

    for modality in modalities:
        dataset = modality_dataset(examples, labels, modality, args.seed)
        sizes = {s: len(dataset[s]["labels"]) for s in SPLITS}
        print(f"[{modality}] split sizes {sizes}", file=sys.stderr)
        model, facts = train_modality(
            modality, dataset, args.epochs, args.batch_size, args.seed, verbose=0 if args.quiet else 2
        )
        path = Path(args.out) / modality / version
        path.mkdir(parents=True, exist_ok=True)
        calibration = facts["calibration"]
        export_saved_model(model, path, calibration["scale"], calibration["bias"])
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
            },
            "training_data": {
                "features": files,
                "labels": args.labels,
                "split": "by content_id, sha256(seed:content_id): 70% train, 15% validation, 15% test",
                "seed": args.seed,
                "sizes": sizes,
            },
            "training": {"epochs_run": facts["epochs_run"], "max_epochs": args.epochs, "batch_size": args.batch_size},
            "calibration": calibration,
            "metrics": {split: evaluate_exported(path, dataset[split]) for split in ("validation", "test")},
        }
        write_card(path, card)
        print(f"[{modality}] exported {path}  test metrics {card['metrics']['test']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run())
