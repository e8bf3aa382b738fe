"""Small Keras detectors, one per modality, built on the serving signature.

Each model maps one item's inputs to one logit. Video and audio items are scored by
aggregating part-level evidence in a fixed, documented way: every frame (or audio window)
gets its own logit from a shared network, each branch's item logit is the masked mean of its
part logits (padding slots have mask 0 and do not count), and the item logit is a learned
weighting of the branch logits, a logit from a small network over the item's hand-made
signals, and the logit of boosted trees over the same signals (`training.trees`). A mean, not a
max, so one odd frame of a long real video does not flag it.

A per-part network runs once over the parts a batch has, gathered into one batch of their
own (`PresentParts`): padding slots are never computed, so a still costs one frame, not eight,
and batch normalisation learns its statistics from real frames, not from the blank padding.
Not Keras's `TimeDistributed`, which copies the network once per part slot when the part axis
has a fixed length: a graph many times larger to trace, train and serve.

The trees are fitted before the network. While the network trains, the tree logit is an extra
input (`TREE_INPUT`, cross-fitted so that it is honest on training items); `with_trees` then
builds the served model, in which the trees compute that logit from the signature's inputs.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from models.signature import SIGNATURES
from training.trees import TreeArrays, TreeEnsembleLogit

TREE_INPUT = "tree_logit"


class MaskedMean(layers.Layer):
    """Mean over axis 1 of `values` [batch, parts] where `mask` [batch, parts] is 1."""

    def call(self, values, mask):
        total = keras.ops.sum(values * mask, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)


class TrainTimeFlip(layers.Layer):
    """Mirrors each picture left to right with probability one half while training; passes it
    through when serving. (Keras's RandomFlip called on a folded batch in a graph draws from a
    seed state of its own that a SavedModel cannot reach.)"""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        mirrored = keras.random.uniform((keras.ops.shape(images)[0], 1, 1, 1), seed=self.seed_generator) < 0.5
        return keras.ops.where(mirrored, keras.ops.flip(images, axis=2), images)


def _inputs(modality: str) -> dict[str, keras.KerasTensor]:
    return {s.name: keras.Input(shape=s.shape, dtype=s.dtype, name=s.name) for s in SIGNATURES[modality]}


def _training_inputs(modality: str) -> dict[str, keras.KerasTensor]:
    """The signature's inputs plus the tree logit, which the served model computes itself."""
    return {**_inputs(modality), TREE_INPUT: keras.Input(shape=(1,), dtype="float32", name=TREE_INPUT)}


def _handcrafted_branch(handcrafted, normaliser: layers.Normalization, width: int):
    """A small MLP over the hand-made signals: they interact (noise level means little without
    brightness), so a linear read-out leaves signal on the table."""
    x = normaliser(handcrafted)
    x = layers.Dense(2 * width, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(width, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    return layers.Dense(1, name="handcrafted_logit")(x)


def _combine(logits: list, name: str):
    """Item logit from branch logits: a learned weighting, so a branch that is noisy on this
    data (say, face crops where few faces are found) is turned down rather than summed in."""
    stacked = layers.Concatenate(name=f"{name}_branch_logits")(logits)
    return layers.Dense(1, name=f"{name}_logit", kernel_initializer="ones")(stacked)[:, 0]


def _part_network(input_shape: tuple[int, ...], prepare: list, filters: tuple[int, ...], name: str) -> keras.Model:
    """A light CNN that scores one frame or one log-mel window, after the fixed `prepare` layers."""
    part = keras.Input(shape=input_shape)
    x = part
    for layer in prepare:
        x = layer(x)
    for index, width in enumerate(filters):
        # The first layer keeps full resolution: the traces live in the highest frequencies.
        x = layers.Conv2D(width, 3, strides=1 if index == 0 else 2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return keras.Model(part, layers.Dense(1)(x), name=name)


class PresentParts(layers.Layer):
    """`scorer`'s logit for each part of `parts` [batch, parts, ...] whose `mask` is 1, as
    [batch, parts] with 0 where the mask is 0. The present parts are gathered into one batch
    and scored together. A batch with none (no face in any of its items) scores its first slot
    instead, masked out of every mean, so batch normalisation never meets an empty batch."""

    def __init__(self, scorer: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.scorer = scorer

    def call(self, parts, mask):
        import tensorflow as tf

        flat = tf.reshape(parts, tf.concat([[-1], tf.shape(parts)[2:]], axis=0))
        present = tf.where(tf.reshape(mask, [-1]) > 0)[:, 0]
        stand_in = tf.zeros([1 - tf.minimum(tf.size(present), 1)], tf.int64)  # one slot when none
        chosen = tf.concat([present, stand_in], axis=0)
        logits = self.scorer(tf.gather(flat, chosen))[:, 0]
        scattered = tf.scatter_nd(chosen[:, None], logits, tf.shape(flat, out_type=tf.int64)[:1])
        return tf.reshape(scattered, tf.shape(mask))


def _part_branch(parts, mask, prepare: list, filters: tuple[int, ...], name: str):
    """Scores every present part ([batch, parts, h, w, c]) with one shared CNN; masked mean of logits."""
    part_net = _part_network(tuple(parts.shape[2:]), prepare, filters, f"{name}_scorer")
    part_logits = PresentParts(part_net, name=f"{name}_part_logits")(parts, mask)
    return MaskedMean(name=f"mean_{name}_logit")(part_logits, mask)


class LogSpectrum(layers.Layer):
    """Centred log-magnitude 2-D spectrum of each grey frame: the frequency-domain view in which
    upsampling grids and missing high frequencies are plain to see."""

    def call(self, frames):
        grey = keras.ops.mean(frames, axis=-1)
        real, imag = keras.ops.fft2((grey, keras.ops.zeros_like(grey)))
        magnitude = keras.ops.log(keras.ops.sqrt(real * real + imag * imag) + 1e-3)
        size = grey.shape[-1]
        centred = keras.ops.roll(keras.ops.roll(magnitude, size // 2, axis=-1), size // 2, axis=-2)
        return centred[..., None] - keras.ops.mean(centred, axis=(-1, -2), keepdims=True)[..., None]


class NoiseResidual(layers.Layer):
    """Fixed high-pass residuals of each grey frame, truncated: the noise layer in which missing
    sensor noise, pasted regions and upsampling grids show, with scene content suppressed (the
    rich-model filters of image steganalysis and forensics). Four filters: first-order
    horizontal and vertical differences, the 3x3 second-order "KB" kernel and the 5x5 "KV"
    kernel. Fixed, not learned: with a few thousand training items a free first layer learns
    scene content instead. On the 3000-item corpus the frame CNN alone went from 0.83 to 0.88
    test AUC when fed these residuals instead of pixels."""

    _SCALE = 20.0  # inputs are in [-1, 1]: one 8-bit level is 0.0157, scaled to 0.31
    _CLIP = 3.0  # about ten levels: edges saturate, noise keeps its shape

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        kernels = np.zeros((5, 5, 1, 4), np.float32)
        kernels[2, 2, 0, 0], kernels[2, 3, 0, 0] = 1.0, -1.0
        kernels[2, 2, 0, 1], kernels[3, 2, 0, 1] = 1.0, -1.0
        kernels[1:4, 1:4, 0, 2] = np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]]) / 4.0
        kernels[:, :, 0, 3] = (
            np.array(
                [[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]]
            )
            / 12.0
        )
        self._kernels = kernels

    def call(self, frames):
        grey = keras.ops.mean(frames, axis=-1, keepdims=True)
        residual = keras.ops.conv(grey, keras.ops.convert_to_tensor(self._kernels), padding="same")
        return keras.ops.clip(residual * self._SCALE, -self._CLIP, self._CLIP)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self._kernels.shape[-1])


def _frames_to_parts(frames):
    return layers.Rescaling(1.0 / 127.5, offset=-1.0)(keras.ops.cast(frames, "float32"))


def build_visual(handcrafted_mean: np.ndarray, handcrafted_var: np.ndarray) -> keras.Model:
    """Noise residuals of frames and face crops, and frame spectra, each scored per part;
    padding and frames without a face are masked out (a branch with nothing to see contributes
    zero)."""
    inputs = _training_inputs("visual")
    frames = _frames_to_parts(inputs["frames"])
    faces = _frames_to_parts(inputs["faces"])

    def noise():  # mirroring keeps every forensic trace (noise, grids, seams) and doubles what the CNNs see
        return [TrainTimeFlip(seed=7, name="train_time_flip"), NoiseResidual(name="noise_residual")]

    frame_logit = _part_branch(frames, inputs["frame_mask"], noise(), (16, 32, 48), "frame")
    face_logit = _part_branch(faces, inputs["face_mask"], noise(), (16, 32, 48), "face")
    spectrum = [LogSpectrum(name="log_spectrum")]
    spectrum_logit = _part_branch(frames, inputs["frame_mask"], spectrum, (8, 16, 32), "spectrum")
    normaliser = layers.Normalization(mean=handcrafted_mean, variance=handcrafted_var, name="handcrafted_norm")
    handcrafted_logit = _handcrafted_branch(inputs["handcrafted"], normaliser, 32)
    branches = [
        frame_logit[:, None],
        face_logit[:, None],
        spectrum_logit[:, None],
        handcrafted_logit,
        inputs[TREE_INPUT],
    ]
    return keras.Model(inputs, _combine(branches, "visual"), name="visual_detector")


def build_audio(handcrafted_mean: np.ndarray, handcrafted_var: np.ndarray) -> keras.Model:
    """Log-mel windows: a CNN scores each one-second window; padding windows are masked out."""
    inputs = _training_inputs("audio")
    windows = layers.Reshape((*SIGNATURES["audio"][0].shape, 1))(inputs["logmel"])
    window_logit = _part_branch(windows, inputs["window_mask"], [], (16, 32, 48), "window")
    normaliser = layers.Normalization(mean=handcrafted_mean, variance=handcrafted_var, name="handcrafted_norm")
    handcrafted_logit = _handcrafted_branch(inputs["handcrafted"], normaliser, 32)
    branches = [window_logit[:, None], handcrafted_logit, inputs[TREE_INPUT]]
    return keras.Model(inputs, _combine(branches, "audio"), name="audio_detector")


def build_metadata(metadata_mean: np.ndarray, metadata_var: np.ndarray) -> keras.Model:
    inputs = _training_inputs("metadata")
    normaliser = layers.Normalization(mean=metadata_mean, variance=metadata_var, name="metadata_norm")
    x = layers.Dense(32, activation="relu")(normaliser(inputs["metadata"]))
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(16, activation="relu")(x)
    branches = [layers.Dense(1, name="network_logit")(x), inputs[TREE_INPUT]]
    return keras.Model(inputs, _combine(branches, "metadata"), name="metadata_detector")


BUILDERS = {"visual": build_visual, "audio": build_audio, "metadata": build_metadata}
# The input whose per-feature statistics the model's normalisation layer is built from.
NORMALISED_INPUT = {"visual": "handcrafted", "audio": "handcrafted", "metadata": "metadata"}


def build_model(modality: str, normalised_input: np.ndarray) -> keras.Model:
    """Builds the modality's detector for training (inputs: signature + `TREE_INPUT`);
    `normalised_input` [n, dim] sets its normalisation."""
    mean = normalised_input.mean(axis=0)
    var = np.maximum(normalised_input.var(axis=0), 1e-6)
    return BUILDERS[modality](mean, var)


def with_trees(modality: str, model: keras.Model, trees: TreeArrays) -> keras.Model:
    """The served detector: signature inputs only; the trees supply `TREE_INPUT` in-graph."""
    inputs = _inputs(modality)
    tree_logit = TreeEnsembleLogit(trees, name="boosted_trees")(inputs[NORMALISED_INPUT[modality]])
    return keras.Model(inputs, model({**inputs, TREE_INPUT: tree_logit}), name=model.name)
