"""Which branch of the f18 visual detector scores real photographs as generated: the
validation split scored whole, without its face crops (face mask 0) and without its frame
crops (frame mask 0: the frame and spectrum branches), per training source.

    python reports/experiments/f18_model_report_f11_20261208/branches.py \
        --warehouse data/model-report/warehouse --model data/model-report/models/visual/20261208T002219 \
        --labels data/model-report/corpus/labels.jsonl data/model-report/sources/*/labels.jsonl

A branch with nothing to see contributes zero to the item's logit (masked mean over no parts),
so each ablation shows what the rest of the detector says. Validation only: the held-out set is
not read.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from models.examples import load_labels
from models.handlers import LoadedSignature, predict_probabilities
from training.metrics import roc_auc
from training.train import modality_dataset, read_features

ABLATIONS = {"whole": {}, "no_faces": {"face_mask": 0.0}, "no_frames": {"frame_mask": 0.0}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--labels", nargs="+", required=True)
    args = parser.parse_args()
    examples, _ = read_features(args.warehouse)
    validation = modality_dataset(examples, load_labels(args.labels), "visual", seed=7)["validation"]
    del examples
    model = LoadedSignature(args.model)
    labels, sources = validation["labels"], np.asarray(validation["sources"])
    has_face = validation["inputs"]["face_mask"].sum(axis=1) > 0
    figures: dict[str, dict] = {}
    for name, zeroed in ABLATIONS.items():
        inputs = dict(validation["inputs"])
        for key, value in zeroed.items():
            inputs[key] = np.full_like(inputs[key], value)
        scores = predict_probabilities(model, inputs)
        by_source = {}
        for source, label in sorted(set(zip(sources, labels))):
            chosen = (sources == source) & (labels == label)
            by_source[f"{source} ({'synthetic' if label else 'real'})"] = {
                "items": int(chosen.sum()), "with_face": int((chosen & has_face).sum()),
                "mean_score": round(float(scores[chosen].mean()), 3)}  # fmt: skip
        figures[name] = {"auc": roc_auc(labels, scores), "auc_items_with_a_face": roc_auc(labels[has_face], scores[has_face]),
                         "by_source": by_source}  # fmt: skip
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
