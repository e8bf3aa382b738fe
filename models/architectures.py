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


def _build_part_model(modality: str, parts, handcrafted_mean: np.ndarray, handcrafted_var: np.ndarray):
    """Shared shape of the visual and audio detectors: per-part logits, masked mean, plus
    a logit from the item's hand-made signals. `parts` maps the inputs to [batch, parts, ...]."""
    tensor_spec, mask_spec, _ = SIGNATURES[modality]
    inputs = _inputs(modality)
    part_inputs = parts(inputs[tensor_spec.name])
    part_net = _part_network(tuple(part_inputs.shape[2:]), (16, 32, 48), f"{modality}_part_scorer")
    part_logits = layers.TimeDistributed(part_net, name=f"{modality}_part_logits")(part_inputs)[..., 0]
    mean_logit = MaskedMean(name=f"mean_{modality}_part_logit")(part_logits, inputs[mask_spec.name])
    normaliser = layers.Normalization(mean=handcrafted_mean, variance=handcrafted_var, name="handcrafted_norm")
    logit = mean_logit[:, None] + _handcrafted_branch(inputs["handcrafted"], normaliser, 32)
    return keras.Model(inputs, logit[:, 0], name=f"{modality}_detector")


def _frames_to_parts(frames):
    return layers.Rescaling(1.0 / 127.5, offset=-1.0)(keras.ops.cast(frames, "float32"))


def _logmel_to_parts(logmel):
    return layers.Reshape((*SIGNATURES["audio"][0].shape, 1))(logmel)


def build_visual(handcrafted_mean: np.ndarray, handcrafted_var: np.ndarray) -> keras.Model:
    """Frames: a CNN scores each sampled frame; padding frames are masked out."""
    return _build_part_model("visual", _frames_to_parts, handcrafted_mean, handcrafted_var)


def build_audio(handcrafted_mean: np.ndarray, handcrafted_var: np.ndarray) -> keras.Model:
    """Log-mel windows: a CNN scores each one-second window; padding windows are masked out."""
    return _build_part_model("audio", _logmel_to_parts, handcrafted_mean, handcrafted_var)


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
