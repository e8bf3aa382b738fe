"""A GAN trained here: a StyleGAN2-flavoured image-to-image generator that re-draws photographs,
the `gan_redraw` source of `training.image_synthesis`.

The generator encodes a photograph to a quarter-resolution code and a style vector, then draws
it back as StyleGAN2's synthesis network does (modulated and demodulated convolutions, per-pixel
noise, bilinear upsampling, RGB outputs summed across resolutions); a patch discriminator trains
it adversarially beside L1 losses on the pixels and their gradients, so the detail it draws is a
GAN's, not a smoothing encoder-decoder's. The content stays the photograph's, every pixel is the
generator's. The held-out MobileStyleGAN is a StyleGAN2 too; nothing here is fitted to it: the
architecture is StyleGAN2's published one, trained only on the training photographs.

    python -m training.image_synthesis train [--cache data/sources]   (with the encoder-decoders)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from PIL import Image, ImageOps

from training.autoencoders import training_patches
from training.sources import training_photographs

PATCH = 96
TRAIN_STEPS = 1500
BATCH = 8
ADVERSARIAL_WEIGHT = 0.1
MAX_SIDE = 1024  # whole-picture inference (the style vector is the whole picture's): memory bound


def model_dir(cache: str | Path) -> Path:
    return Path(cache) / "trained" / "gan_redraw"


@keras.saving.register_keras_serializable(package="gan_redraw")
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
        x = tf.nn.conv2d(x * style[:, None, None, :], self.weight, 1, "SAME")
        energy = tf.matmul(tf.square(style), tf.reduce_sum(tf.square(self.weight), axis=(0, 1)))  # (batch, out)
        return x * tf.math.rsqrt(energy + 1e-8)[:, None, None, :]

    def get_config(self):
        return super().get_config() | {"filters": self.filters, "kernel": self.kernel}


@keras.saving.register_keras_serializable(package="gan_redraw")
class Noise(layers.Layer):
    """Per-pixel noise with a learned strength per channel (StyleGAN's noise inputs)."""

    def build(self, shape):
        self.strength = self.add_weight(shape=(shape[-1],), initializer="zeros", name="strength")

    def call(self, x):
        return x + tf.random.normal(tf.concat([tf.shape(x)[:3], [1]], 0)) * self.strength


def build_generator() -> keras.Model:
    inputs = keras.Input((None, None, 3))
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(64, 4, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(128, 4, strides=2, padding="same", activation="relu")(x)
    for _ in range(2):
        inner = layers.Conv2D(128, 3, padding="same", activation="relu")(x)
        x = layers.Add()([x, layers.Conv2D(128, 3, padding="same")(inner)])
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
    return keras.Model(inputs, layers.Activation("tanh")(rgb), name="gan_redraw_generator")


def build_discriminator() -> keras.Model:
    inputs = keras.Input((PATCH, PATCH, 3))
    x = inputs
    for filters in (64, 128, 256):
        x = layers.LeakyReLU(0.2)(layers.Conv2D(filters, 4, strides=2, padding="same")(x))
    return keras.Model(inputs, layers.Conv2D(1, 3, padding="same")(x), name="patch_discriminator")


def train(cache: str | Path, steps: int | None = None, seed: int = 3) -> dict:
    """Trains the generator against the discriminator on patches of the training photographs
    (non-saturating GAN loss, Adam 2e-4, beta1 0); saves `generator.keras` under `model_dir`.
    About 15 minutes on 2 cores."""
    steps = steps or TRAIN_STEPS
    photos = training_photographs(cache)
    if not photos:
        raise RuntimeError(f"no training photographs under {cache}: run `python -m training.sources fetch` first")
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    data = training_patches(photos, steps * BATCH // 2, seed, PATCH).astype(np.float32) / 127.5 - 1.0
    generator, discriminator = build_generator(), build_discriminator()
    g_opt = keras.optimizers.Adam(2e-4, beta_1=0.0, beta_2=0.99)
    d_opt = keras.optimizers.Adam(2e-4, beta_1=0.0, beta_2=0.99)

    def gradients(t):
        return t[:, 1:] - t[:, :-1], t[:, :, 1:] - t[:, :, :-1]

    @tf.function
    def step(real):
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = generator(real, training=True)
            real_logit, fake_logit = discriminator(real, training=True), discriminator(fake, training=True)
            pairs = zip(gradients(real), gradients(fake), strict=True)
            reconstruction = tf.reduce_mean(tf.abs(real - fake)) + sum(tf.reduce_mean(tf.abs(a - b)) for a, b in pairs)
            adversarial = tf.reduce_mean(tf.nn.softplus(-fake_logit))
            g_loss = reconstruction + ADVERSARIAL_WEIGHT * adversarial
            d_loss = tf.reduce_mean(tf.nn.softplus(fake_logit)) + tf.reduce_mean(tf.nn.softplus(-real_logit))
        for tape, loss, model, optimizer in (
            (g_tape, g_loss, generator, g_opt),
            (d_tape, d_loss, discriminator, d_opt),
        ):
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return reconstruction, adversarial, d_loss

    started, log = time.perf_counter(), []
    for index in range(steps):
        losses = [float(v) for v in step(tf.constant(data[rng.integers(0, len(data), BATCH)]))]
        if index % 100 == 0 or index == steps - 1:
            log.append({"step": index, "reconstruction": losses[0], "adversarial": losses[1], "discriminator": losses[2],
                        "seconds": round(time.perf_counter() - started, 1)})  # fmt: skip
            print(f"gan_redraw: {json.dumps(log[-1])}", file=sys.stderr)
    folder = model_dir(cache)
    folder.mkdir(parents=True, exist_ok=True)
    generator.save(folder / "generator.keras")
    facts = {"photos": len(photos), "seed": seed, "steps": steps, "batch": BATCH, "patch": PATCH, "log": log}
    (folder / "trained.json").write_text(json.dumps(facts, indent=2))
    return facts


def load(cache: str | Path) -> keras.Model:
    """The trained generator, training it first if it is missing."""
    path = model_dir(cache) / "generator.keras"
    if not path.exists():
        train(cache)
    return keras.models.load_model(path, compile=False)


def redraw(model: keras.Model, picture: np.ndarray) -> np.ndarray:
    """The generator's drawing of `picture` (uint8 RGB) in one pass, cropped to a multiple of 4."""
    height, width = (side - side % 4 for side in picture.shape[:2])
    data = picture[None, :height, :width].astype(np.float32) / 127.5 - 1.0
    return np.clip((np.asarray(model(data, training=False))[0] + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def redraw_file(model: keras.Model, path: str | Path) -> np.ndarray:
    """The re-drawing of a photograph file, upright, at up to MAX_SIDE px on the long side."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        return redraw(model, np.asarray(image))
