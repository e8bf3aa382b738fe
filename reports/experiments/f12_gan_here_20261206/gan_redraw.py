"""A GAN trained here: a StyleGAN2-flavoured image-to-image generator that re-draws photographs.

The generator encodes a photograph to a quarter-resolution code and a style vector, then draws
it back as StyleGAN2's synthesis network does (modulated and demodulated convolutions, per-pixel
noise, bilinear upsampling, an RGB output summed across resolutions); a patch discriminator
trains it adversarially beside an L1 reconstruction loss, so the detail it draws is a GAN's, not
a smoothing encoder-decoder's. The photographs' content stays, every pixel is the generator's.
An experiment, not served code.

    python reports/experiments/f12_gan_here_20261206/gan_redraw.py train --cache data/sources \
        --out data/f12/gan_here --steps 1500
    python reports/experiments/f12_gan_here_20261206/gan_redraw.py redraw --model data/f12/gan_here \
        --corpus data/mr28/sources_a --out data/f12/gan_corpus --limit 400
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from PIL import Image

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))

from models.sources import training_photographs

PATCH = 96


@keras.saving.register_keras_serializable(package="f12")
class ModulatedConv(layers.Layer):
    """StyleGAN2's modulated convolution: input channels scaled by a style, output demodulated."""

    def __init__(self, filters: int, kernel: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel = filters, kernel

    def build(self, shapes):
        channels = shapes[0][-1]
        self.weight = self.add_weight(shape=(self.kernel, self.kernel, channels, self.filters),
                                      initializer="he_normal", name="weight")  # fmt: skip
        self.affine = layers.Dense(channels, bias_initializer="ones")
        self.affine.build(shapes[1])

    def call(self, inputs):
        x, w = inputs
        style = self.affine(w)  # (batch, in)
        x = x * style[:, None, None, :]
        x = tf.nn.conv2d(x, self.weight, 1, "SAME")
        energy = tf.matmul(tf.square(style), tf.reduce_sum(tf.square(self.weight), axis=(0, 1)))  # (batch, out)
        return x * tf.math.rsqrt(energy + 1e-8)[:, None, None, :]

    def get_config(self):
        return super().get_config() | {"filters": self.filters, "kernel": self.kernel}


@keras.saving.register_keras_serializable(package="f12")
class Noise(layers.Layer):
    """Per-pixel noise with a learned strength per channel (StyleGAN's noise inputs)."""

    def build(self, shape):
        self.strength = self.add_weight(shape=(shape[-1],), initializer="zeros", name="strength")

    def call(self, x):
        noise = tf.random.normal(tf.concat([tf.shape(x)[:3], [1]], 0))
        return x + noise * self.strength


def build_generator() -> keras.Model:
    inputs = keras.Input((None, None, 3))
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(64, 4, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(128, 4, strides=2, padding="same", activation="relu")(x)
    for _ in range(2):
        x = layers.Add()([x, layers.Conv2D(128, 3, padding="same")(layers.Conv2D(128, 3, padding="same",
                                                                                   activation="relu")(x))])  # fmt: skip
    w = layers.GlobalAveragePooling2D()(x)
    for _ in range(2):
        w = layers.Dense(128, activation="relu")(w)

    def synthesis(x, filters):
        for _ in range(2):
            x = layers.LeakyReLU(0.2)(Noise()(ModulatedConv(filters)([x, w])))
        return x

    x = synthesis(x, 128)
    rgb = layers.Conv2D(3, 1)(x)
    for filters in (64, 32):
        x = synthesis(layers.UpSampling2D(2, interpolation="bilinear")(x), filters)
        rgb = layers.Add()([layers.UpSampling2D(2, interpolation="bilinear")(rgb), layers.Conv2D(3, 1)(x)])
    return keras.Model(inputs, layers.Activation("tanh")(rgb), name="gan_here_generator")


def build_discriminator() -> keras.Model:
    inputs = keras.Input((PATCH, PATCH, 3))
    x = inputs
    for filters in (64, 128, 256):
        x = layers.LeakyReLU(0.2)(layers.Conv2D(filters, 4, strides=2, padding="same")(x))
    return keras.Model(inputs, layers.Conv2D(1, 3, padding="same")(x), name="patch_discriminator")


def training_patches(cache: str, count: int, rng: np.random.Generator) -> np.ndarray:
    pictures = []
    for path in training_photographs(cache):
        with Image.open(path) as image:
            picture = np.asarray(image.convert("RGB"))
        if min(picture.shape[:2]) >= PATCH:
            pictures.append(picture)
    out = np.empty((count, PATCH, PATCH, 3), np.float32)
    for index in range(count):
        picture = pictures[int(rng.integers(len(pictures)))]
        top, left = (int(rng.integers(0, s - PATCH + 1)) for s in picture.shape[:2])
        out[index] = picture[top : top + PATCH, left : left + PATCH] / 127.5 - 1.0
    return out


def train(args) -> None:
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = training_patches(args.cache, args.steps * args.batch // 2, rng)
    generator, discriminator = build_generator(), build_discriminator()
    g_opt, d_opt = keras.optimizers.Adam(2e-4, beta_1=0.0, beta_2=0.99), keras.optimizers.Adam(2e-4, beta_1=0.0,
                                                                                                 beta_2=0.99)  # fmt: skip

    def gradients(t):
        return t[:, 1:] - t[:, :-1], t[:, :, 1:] - t[:, :, :-1]

    @tf.function
    def step(real):
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = generator(real, training=True)
            real_logit, fake_logit = discriminator(real, training=True), discriminator(fake, training=True)
            reconstruction = tf.reduce_mean(tf.abs(real - fake)) + sum(
                tf.reduce_mean(tf.abs(a - b)) for a, b in zip(gradients(real), gradients(fake))
            )
            adversarial = tf.reduce_mean(tf.nn.softplus(-fake_logit))
            g_loss = reconstruction + args.adversarial * adversarial
            d_loss = tf.reduce_mean(tf.nn.softplus(fake_logit)) + tf.reduce_mean(tf.nn.softplus(-real_logit))
        g_opt.apply_gradients(zip(g_tape.gradient(g_loss, generator.trainable_variables),
                                  generator.trainable_variables))  # fmt: skip
        d_opt.apply_gradients(zip(d_tape.gradient(d_loss, discriminator.trainable_variables),
                                  discriminator.trainable_variables))  # fmt: skip
        return reconstruction, adversarial, d_loss

    started = time.perf_counter()
    log = []
    for index in range(args.steps):
        batch = data[rng.integers(0, len(data), args.batch)]
        losses = [float(v) for v in step(tf.constant(batch))]
        if index % 100 == 0 or index == args.steps - 1:
            log.append({"step": index, "reconstruction": losses[0], "adversarial": losses[1], "d": losses[2],
                        "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
            print(json.dumps(log[-1]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    generator.save(os.path.join(args.out, "generator.keras"))
    with open(os.path.join(args.out, "trained.json"), "w") as handle:
        json.dump({"arguments": vars(args), "log": log}, handle, indent=1)


def redraw(args) -> None:
    generator = keras.models.load_model(os.path.join(args.model, "generator.keras"))
    with open(os.path.join(args.corpus, "labels.jsonl")) as handle:
        labels = {row["content_id"]: row for row in map(json.loads, handle)}
    with open(os.path.join(args.corpus, "manifest.jsonl")) as handle:
        rows = [json.loads(line) for line in handle]
    stills = [r for r in rows if labels[r["content_id"]]["media_type"] == "image"
              and labels[r["content_id"]]["label"] == "real"]  # fmt: skip
    random.Random(args.seed).shuffle(stills)
    rng = np.random.default_rng(args.seed)
    media = os.path.join(args.out, "media")
    os.makedirs(media, exist_ok=True)
    out_labels, out_manifest = [], []
    started = time.perf_counter()
    for index, row in enumerate(stills[: args.limit]):
        with Image.open(os.path.join(args.corpus, row["media_uri"])) as image:
            picture = np.asarray(image.convert("RGB"))
        height, width = (s - s % 4 for s in picture.shape[:2])
        if min(height, width) < 64:
            continue
        drawn = np.asarray(generator(picture[None, :height, :width].astype(np.float32) / 127.5 - 1.0)[0])
        result = Image.fromarray(np.clip((drawn + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8))
        # the platform chain after the generator: sometimes shrunk, saved as JPEG or PNG
        if rng.random() < 0.4:
            scale = float(rng.uniform(0.5, 0.9))
            result = result.resize((max(64, int(width * scale)), max(64, int(height * scale))), Image.LANCZOS)
        content_id = f"gan_here-{index:05d}"
        if rng.random() < 0.7:
            name = f"{content_id}.jpg"
            buffer = io.BytesIO()
            result.save(buffer, "JPEG", quality=int(rng.integers(70, 96)))
            data = buffer.getvalue()
        else:
            name = f"{content_id}.png"
            buffer = io.BytesIO()
            result.save(buffer, "PNG")
            data = buffer.getvalue()
        with open(os.path.join(media, name), "wb") as handle:
            handle.write(data)
        out_labels.append({"content_id": content_id, "label": "synthetic", "source": "gan_here",
                           "media_type": "image", "redrawn_from": row["content_id"]})  # fmt: skip
        out_manifest.append({"content_id": content_id, "media_uri": f"media/{name}"})
        if index % 50 == 0:
            print(f"{index} redrawn in {time.perf_counter() - started:.0f}s", flush=True)
    for name, rows_out in (("labels.jsonl", out_labels), ("manifest.jsonl", out_manifest)):
        with open(os.path.join(args.out, name), "w") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in rows_out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train")
    t.add_argument("--cache", default="data/sources")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--adversarial", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=3)
    r = commands.add_parser("redraw")
    r.add_argument("--model", required=True)
    r.add_argument("--corpus", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--limit", type=int, default=400)
    r.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    (train if args.command == "train" else redraw)(args)


if __name__ == "__main__":
    main()
