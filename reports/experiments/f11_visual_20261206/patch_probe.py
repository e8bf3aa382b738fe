"""A pixel-only probe: a small CNN on native-resolution 64 px patches, nothing else.

Trained on the training sources' uploads (real photographs against Real-ESRGAN and the four
encoder-decoders), an upload's score is the mean patch logit; measured on a random sixth of
those uploads and on the visual held-out set (stills only). An experiment, not served code.

    python reports/experiments/f11_visual_20261206/patch_probe.py --data data/mr28 \
        --train sources_a sources_b --heldout heldout_visual --epochs 3 --augment light
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random

import numpy as np
import tensorflow as tf
from PIL import Image, ImageFilter
from sklearn.metrics import roc_auc_score

PATCH = 64


def uploads(corpus: str) -> list[tuple[str, int, str]]:
    """(media path, 1 if synthetic, source) for every still image of a source corpus."""
    with open(os.path.join(corpus, "labels.jsonl")) as handle:
        labels = {row["content_id"]: row for row in map(json.loads, handle)}
    with open(os.path.join(corpus, "manifest.jsonl")) as handle:
        rows = [json.loads(line) for line in handle]
    return [(os.path.join(corpus, row["media_uri"]), int(labels[row["content_id"]]["label"] == "synthetic"),
             labels[row["content_id"]]["source"])
            for row in rows if labels[row["content_id"]]["media_type"] == "image"]  # fmt: skip


def patches(path: str, count: int, augment: str, rng: np.random.Generator) -> np.ndarray | None:
    return patches_of(np.asarray(Image.open(path).convert("RGB")), count, augment, rng)


def patches_of(pixels: np.ndarray, count: int, augment: str, rng: np.random.Generator) -> np.ndarray | None:
    height, width = pixels.shape[:2]
    if min(height, width) < PATCH:
        return None
    out = []
    for _ in range(count):
        top, left = int(rng.integers(0, height - PATCH + 1)), int(rng.integers(0, width - PATCH + 1))
        patch = pixels[top : top + PATCH, left : left + PATCH]
        if augment == "wang" and rng.random() < 0.3:
            patch = np.asarray(Image.fromarray(patch).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5)))))
        if augment != "none" and rng.random() < (0.4 if augment == "wang" else 0.3):
            quality = int(rng.integers(40, 96) if augment == "wang" else rng.integers(60, 96))
            buffer = io.BytesIO()
            Image.fromarray(patch).save(buffer, "JPEG", quality=quality)
            patch = np.asarray(Image.open(buffer))
        out.append(patch)
    return np.stack(out)


def build_network(strided: bool) -> tf.keras.Model:
    inputs = tf.keras.Input((PATCH, PATCH, 3))
    x = tf.keras.layers.Rescaling(1 / 127.5, -1)(inputs)

    def conv(x, filters, strides=1):
        x = tf.keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        return tf.keras.layers.ReLU()(tf.keras.layers.BatchNormalization()(x))

    if strided:
        x = conv(x, 24)
    for filters in (32, 48, 64, 96):
        x = conv(x, filters, 2) if strided else conv(x, filters)
        x = conv(x, filters)
        if not strided:
            x = tf.keras.layers.MaxPool2D()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(1)(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--train", nargs="+", required=True)
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--augment", choices=("none", "light", "wang"), default="light")
    parser.add_argument("--copies", type=int, default=1, help="augmented copies of the training patches")
    parser.add_argument(
        "--leave-out",
        nargs="*",
        default=[],
        help="generators kept out of training, each measured against the validation's real items",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="where to write the figures (JSON)")
    parser.add_argument("--scores", default=None, help="where to write every measured upload's score (JSON lines)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    tf.keras.utils.set_random_seed(args.seed)
    every = [item for name in args.train for item in uploads(os.path.join(args.data, name))]
    left_out = [item for item in every if item[2] in args.leave_out]
    items = [item for item in every if item[2] not in args.leave_out]
    random.Random(1).shuffle(items)
    validation, training = items[: len(items) // 6], items[len(items) // 6 :]
    x, y = [], []
    for _ in range(args.copies):
        for path, label, _ in training:
            drawn = patches(path, 24, args.augment, rng)
            if drawn is not None:
                x.append(drawn)
                y += [label] * len(drawn)
    network = build_network(strided=args.augment == "wang")
    network.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.BinaryCrossentropy(from_logits=True))
    network.fit(np.concatenate(x), np.array(y), batch_size=128, epochs=args.epochs, shuffle=True, verbose=2)

    scored = []

    def measured(items: list[tuple[str, int, str]], split: str) -> dict:
        scores, labels, sources = [], [], []
        for path, label, source in items:
            drawn = patches(path, 32, "none", rng)
            if drawn is not None:
                scores.append(float(np.mean(network.predict(drawn, verbose=0))))
                labels.append(label)
                sources.append(source)
                scored.append({"split": split, "path": path, "label": label, "source": source, "logit": scores[-1]})
        by_source = {s: np.percentile([v for v, t in zip(scores, sources) if t == s], [10, 50, 90]).round(2).tolist()
                     for s in sorted(set(sources))}  # fmt: skip
        return {"items": len(labels), "auc": round(float(roc_auc_score(labels, scores)), 3),
                "logit_p10_p50_p90": by_source}  # fmt: skip

    figures = {"validation": measured(validation, "validation")}
    for source in args.leave_out:
        reals = [i for i in validation if i[1] == 0]
        figures[f"left_out:{source}"] = measured(reals + [i for i in left_out if i[2] == source], f"left_out:{source}")
    figures["heldout"] = measured(uploads(os.path.join(args.data, args.heldout)), "heldout")
    if args.scores:
        with open(args.scores, "w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in scored)
    print(json.dumps(figures, indent=1))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"arguments": vars(args), **figures}, handle, indent=1)


if __name__ == "__main__":
    main()
