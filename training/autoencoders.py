"""Encoder-decoders trained here on the real training photographs, one per upsampling operator
generators use (`training.sources.AUTOENCODER_UPSAMPLING`), and their re-drawing of whole
photographs at native resolution: the `autoencoder_*` sources of `training.image_synthesis`.

The TensorFlow side of that module, kept apart so that planning a corpus imports no TensorFlow.

    python -m training.image_synthesis train [--cache data/sources]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from PIL import Image, ImageOps

from training.sources import AUTOENCODER_VARIANTS, training_photographs

_PATCH = 64
TRAIN_STEPS = 800
_MAX_REDRAW_SIDE = 1600
_TILE = 256  # inference tile (with a margin) so a 4K photograph fits in memory


def autoencoder_dir(cache: str | Path) -> Path:
    return Path(cache) / "trained" / "autoencoders"


# Registered under the module it was first written in: the name the saved models carry.
@keras.saving.register_keras_serializable(package="image_synthesis")
class DepthToSpace(layers.Layer):
    """Sub-pixel shuffle: channels become a 2x2 block of pixels (ESPCN, Real-ESRGAN)."""

    def call(self, x):
        return tf.nn.depth_to_space(x, 2)


def build_autoencoder(variant: str) -> keras.Model:
    """The encoder-decoder that upsamples by `variant` (one of AUTOENCODER_VARIANTS)."""

    def up(x, width: int):
        if variant == "transposed":
            return layers.Conv2DTranspose(width, 4, strides=2, padding="same", activation="relu")(x)
        if variant == "shuffle":
            return DepthToSpace()(layers.Conv2D(width * 4, 3, padding="same", activation="relu")(x))
        x = layers.UpSampling2D(2, interpolation=variant)(x)
        return layers.Conv2D(width, 3, padding="same", activation="relu")(x)

    # One halving and one doubling: the last layers of a generator, whose upsampling traces
    # are what a detector should learn, on a code rich enough to keep the photograph's colour
    # and detail (a deeper bottleneck trained this briefly returns a blurred, tinted picture).
    inputs = keras.Input(shape=(None, None, 3))
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(64, 4, strides=2, padding="same", activation="relu")(x)
    for _ in range(3):
        skip = x
        x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(64, 3, padding="same")(x)
        x = layers.Add()([skip, x])
    x = up(x, 32)
    outputs = layers.Conv2D(3, 3, padding="same", activation="tanh")(x)
    return keras.Model(inputs, outputs, name=f"autoencoder_{variant}")


def training_patches(photos: Sequence[Path], count: int, seed: int, size: int = _PATCH) -> np.ndarray:
    """`count` random `size` px patches (uint8) of the photographs at their own resolution."""
    rng = np.random.default_rng(seed)
    pictures = []
    for path in photos:
        with Image.open(path) as image:
            picture = np.asarray(image.convert("RGB"))
        if min(picture.shape[:2]) >= size:
            pictures.append(picture)
    patches = np.empty((count, size, size, 3), np.uint8)
    for index in range(count):
        picture = pictures[int(rng.integers(len(pictures)))]
        top = int(rng.integers(0, picture.shape[0] - size + 1))
        left = int(rng.integers(0, picture.shape[1] - size + 1))
        patches[index] = picture[top : top + size, left : left + size]
    return patches


def train_autoencoders(cache: str | Path, steps: int | None = None, seed: int = 11) -> dict[str, dict]:
    """Trains one encoder-decoder per upsampling operator on patches of the training sources'
    photographs (L1 plus an L1 on image gradients, so the decoder draws detail instead of
    smoothing it away), `steps` batches each (default TRAIN_STEPS); saves `<variant>.keras`
    under `autoencoder_dir(cache)`."""
    steps = steps or TRAIN_STEPS

    photos = training_photographs(cache)
    if not photos:
        raise RuntimeError(f"no training photographs under {cache}: run `python -m training.sources fetch` first")
    patches = training_patches(photos, 16 * steps // 4, seed)
    out = autoencoder_dir(cache)
    out.mkdir(parents=True, exist_ok=True)
    facts = {}
    for index, variant in enumerate(AUTOENCODER_VARIANTS):
        keras.utils.set_random_seed(seed + index)
        model = build_autoencoder(variant)

        def loss(target, output):
            dy = lambda t: t[:, 1:] - t[:, :-1]  # noqa: E731
            dx = lambda t: t[:, :, 1:] - t[:, :, :-1]  # noqa: E731
            return (tf.reduce_mean(tf.abs(target - output)) + tf.reduce_mean(tf.abs(dy(target) - dy(output)))
                    + tf.reduce_mean(tf.abs(dx(target) - dx(output))))  # fmt: skip

        model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss)
        data = patches.astype(np.float32) / 127.5 - 1.0
        started = time.perf_counter()
        history = model.fit(data, data, batch_size=16, epochs=4, verbose=0, shuffle=True)
        model.save(out / f"{variant}.keras")
        facts[variant] = {"steps": 4 * len(data) // 16, "final_loss": float(history.history["loss"][-1]),
                          "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
        print(f"autoencoder {variant}: loss {facts[variant]['final_loss']:.4f} in {facts[variant]['seconds']}s",
              file=sys.stderr)  # fmt: skip
    (out / "trained.json").write_text(json.dumps({"photos": len(photos), "seed": seed, "variants": facts}, indent=2))
    return facts


def redraw(model, picture: np.ndarray) -> np.ndarray:
    """The autoencoder's version of `picture` (uint8 RGB), run tile by tile with a margin so
    the seams fall outside what is kept."""
    height, width = picture.shape[:2]
    margin = 32  # past the network's reach (about 20 px), so a tile's edge does not show
    out = np.empty_like(picture)
    data = picture.astype(np.float32) / 127.5 - 1.0
    for top in range(0, height, _TILE):
        for left in range(0, width, _TILE):
            t0, l0 = max(top - margin, 0), max(left - margin, 0)
            t1, l1 = min(top + _TILE + margin, height), min(left + _TILE + margin, width)
            # the network halves once: pad the tile to an even size
            tile = data[t0:t1, l0:l1]
            pad = ((0, (-tile.shape[0]) % 2), (0, (-tile.shape[1]) % 2), (0, 0))
            result = np.asarray(model(np.pad(tile, pad, mode="reflect")[None], training=False))[0]
            keep = result[
                top - t0 : top - t0 + min(_TILE, height - top), left - l0 : left - l0 + min(_TILE, width - left)
            ]
            out[top : top + keep.shape[0], left : left + keep.shape[1]] = np.clip((keep + 1) * 127.5 + 0.5, 0, 255)
    return out


def load(cache: str | Path, variant: str) -> keras.Model:
    """The trained encoder-decoder of `variant`, training all four first if any is missing."""
    folder = autoencoder_dir(cache)
    if not all((folder / f"{v}.keras").exists() for v in AUTOENCODER_VARIANTS):
        train_autoencoders(cache)
    return keras.models.load_model(folder / f"{variant}.keras", compile=False, safe_mode=False)


def redraw_file(model: keras.Model, path: str | Path) -> np.ndarray:
    """The re-drawing of a photograph file, upright, at up to 1600 px on the long side (the
    platform chain crops and scales it further), which keeps a wallpaper to seconds."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        image.thumbnail((_MAX_REDRAW_SIDE, _MAX_REDRAW_SIDE), Image.Resampling.LANCZOS)
        return redraw(model, np.asarray(image))
