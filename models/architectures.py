"""Small Keras detectors, one per modality, built on the serving signature.

Each model maps one item's inputs to one logit. Video and audio items are scored by
aggregating part-level evidence in a fixed, documented way: every frame (or audio window)
gets its own logit from a shared network, the item logit is the masked mean of the part
logits (padding slots have mask 0 and do not count) plus a logit from the item's hand-made
signals. A mean, not a max, so one odd frame of a long real video does not flag it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from models.signature import SIGNATURES


class MaskedMean(layers.Layer):
    """Mean over axis 1 of `values` [batch, parts] where `mask` [batch, parts] is 1."""

    def call(self, values, mask):
        total = keras.ops.sum(values * mask, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)


def _inputs(modality: str) -> dict[str, keras.KerasTensor]:
    return {s.name: keras.Input(shape=s.shape, dtype=s.dtype, name=s.name) for s in SIGNATURES[modality]}


def _handcrafted_branch(handcrafted, normaliser: layers.Normalization, width: int):
    x = normaliser(handcrafted)
    x = layers.Dense(width, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    return layers.Dense(1, name="handcrafted_logit")(x)


def _part_network(input_shape: tuple[int, ...], filters: tuple[int, ...], name: str) -> keras.Model:
    """A light CNN that scores one frame or one log-mel window."""
    part = keras.Input(shape=input_shape)
    x = part
    for index, width in enumerate(filters):
        # The first layer keeps full resolution: the traces live in the highest frequencies.
        x = layers.Conv2D(width, 3, strides=1 if index == 0 else 2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return keras.Model(part, layers.Dense(1)(x), name=name)


def build_visual(handcrafted_mean: np.ndarray, handcrafted_var: np.ndarray) -> keras.Model:
    inputs = _inputs("visual")
    frames = layers.Rescaling(1.0 / 127.5, offset=-1.0)(keras.ops.cast(inputs["frames"], "float32"))
    frame_net = _part_network(tuple(SIGNATURES["visual"][0].shape[1:]), (16, 32, 48), "frame_scorer")
    frame_logits = layers.TimeDistributed(frame_net, name="frame_logits")(frames)[..., 0]
    visual_logit = MaskedMean(name="mean_frame_logit")(frame_logits, inputs["frame_mask"])
    normaliser = layers.Normalization(mean=handcrafted_mean, variance=handcrafted_var, name="handcrafted_norm")
    logit = visual_logit[:, None] + _handcrafted_branch(inputs["handcrafted"], normaliser, 32)
    return keras.Model(inputs, logit[:, 0], name="visual_detector")


def build_audio(handcrafted_mean: np.ndarray, handcrafted_var: np.ndarray) -> keras.Model:
    inputs = _inputs("audio")
    windows = layers.Reshape((*SIGNATURES["audio"][0].shape, 1))(inputs["logmel"])
    window_net = _part_network((*SIGNATURES["audio"][0].shape[1:], 1), (16, 32, 48), "window_scorer")
    window_logits = layers.TimeDistributed(window_net, name="window_logits")(windows)[..., 0]
    audio_logit = MaskedMean(name="mean_window_logit")(window_logits, inputs["window_mask"])
    normaliser = layers.Normalization(mean=handcrafted_mean, variance=handcrafted_var, name="handcrafted_norm")
    logit = audio_logit[:, None] + _handcrafted_branch(inputs["handcrafted"], normaliser, 32)
    return keras.Model(inputs, logit[:, 0], name="audio_detector")


def build_metadata(metadata_mean: np.ndarray, metadata_var: np.ndarray) -> keras.Model:
    inputs = _inputs("metadata")
    normaliser = layers.Normalization(mean=metadata_mean, variance=metadata_var, name="metadata_norm")
    x = layers.Dense(32, activation="relu")(normaliser(inputs["metadata"]))
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(16, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(1)(x)[:, 0], name="metadata_detector")


BUILDERS = {"visual": build_visual, "audio": build_audio, "metadata": build_metadata}
# The input whose per-feature statistics the model's normalisation layer is built from.
NORMALISED_INPUT = {"visual": "handcrafted", "audio": "handcrafted", "metadata": "metadata"}


def build_model(modality: str, normalised_input: np.ndarray) -> keras.Model:
    """Builds the modality's detector; `normalised_input` [n, dim] sets its normalisation."""
    mean = normalised_input.mean(axis=0)
    var = np.maximum(normalised_input.var(axis=0), 1e-6)
    return BUILDERS[modality](mean, var)
