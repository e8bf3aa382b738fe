"""What the per-part networks cost to build, train and serve: the visual detector (frames, face
crops and spectra, each scored part by part) on random inputs of the serving signature's shapes.

    python -m benchmarks.part_networks [--batch 16] [--steps 20] [--modality visual]

Prints: the seconds to build the model and run its first training step (tracing included), the
wall and CPU milliseconds per training step after it, the seconds to export the SavedModel, and the serving
signature's seconds per batch once warm. CPU only; one process, every core.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from models.signature import SIGNATURES


def _batch(modality: str, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for spec in SIGNATURES[modality]:
        shape = (size, *spec.shape)
        if spec.dtype == "uint8":
            out[spec.name] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif spec.name.endswith("_mask"):
            out[spec.name] = (rng.random(shape) < 0.7).astype(spec.dtype)
        else:
            out[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.part_networks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--modality", default="visual", choices=("visual", "audio"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    import keras
    import tensorflow as tf

    from models.registry import export_saved_model
    from training.architectures import TREE_INPUT, build_model

    rng = np.random.default_rng(0)
    inputs = _batch(args.modality, args.batch, rng)
    handcrafted = inputs["handcrafted"]
    labels = rng.integers(0, 2, args.batch).astype("float32")
    began = time.perf_counter()
    model = build_model(args.modality, handcrafted)
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    training = {**inputs, TREE_INPUT: np.zeros((args.batch, 1), np.float32)}
    model.train_on_batch(training, labels)
    first = time.perf_counter() - began
    began, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        model.train_on_batch(training, labels)
    per_step = (time.perf_counter() - began) / args.steps
    cpu_per_step = (time.process_time() - cpu) / args.steps
    signature = {s.name: keras.Input(shape=s.shape, dtype=s.dtype, name=s.name) for s in SIGNATURES[args.modality]}
    zero_trees = keras.ops.zeros_like(signature["handcrafted"][:, :1])
    served = keras.Model(signature, model({**signature, TREE_INPUT: zero_trees}))
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        export_saved_model(served, Path(folder) / "model", 1.0, 0.0)
        exported = time.perf_counter() - began
        serve = tf.saved_model.load(str(Path(folder) / "model")).signatures["serving_default"]
        tensors = {name: tf.constant(value) for name, value in inputs.items()}
        serve(**tensors)
        began = time.perf_counter()
        for _ in range(args.steps):
            serve(**tensors)
        per_batch = (time.perf_counter() - began) / args.steps
    print(f"{args.modality}, batch {args.batch}: build and first training step {first:.1f} s; "
          f"training step {per_step * 1000:.0f} ms ({cpu_per_step * 1000:.0f} CPU ms); export {exported:.1f} s; "
          f"serving {per_batch * 1000:.0f} ms a batch")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
