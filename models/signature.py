"""The serving signature each modality's SavedModel honours.

Feature extraction (transforms/) produces exactly these tensors and training reads them back
from the features the pipeline writes, so training and serving cannot drift apart. Any
SavedModel whose `serving_default` signature takes these inputs (batched on axis 0) and
returns a `probability` output of shape [batch] drops in through `--model_dir`.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from models.audio_layout import AUDIO_HANDCRAFTED_DIM
from models.metadata_layout import METADATA_DIM
from models.visual_layout import VISUAL_HANDCRAFTED_DIM

FEATURE_VERSION = "f10"
# The feature version since which each modality's inputs are computed as they are now. A model
# trained on features of that version or later reads what the pipeline extracts today and is
# served; one trained on older features is refused. A feature version that changes one
# modality's inputs moves that modality's entry alone, so the other modalities' models serve on.
INPUTS_SINCE = {"visual": "f10", "audio": "f10", "metadata": "f10"}

# Visual: frames sampled across the item, each a native-resolution centre crop. Crops, not
# resizes: resampling would erase the pixel-level traces (upsampling grids, blending seams,
# missing sensor noise) the detector looks for.
# Faces (OpenCV's bundled Haar cascade) are cropped per frame with a margin that keeps the
# blending boundary, and resized to the same size: a swapped face shows in its own texture
# and at its seam.
MAX_FRAMES = 8
CROP_SIZE = 64

# Audio: 16 kHz mono, 25 ms windows every 10 ms, 40 mel bands, 1 s analysis windows.
SAMPLE_RATE = 16_000
N_FFT = 512
WIN_LENGTH = 400
HOP_LENGTH = 160
N_MELS = 40
WINDOW_FRAMES = 100
MAX_WINDOWS = 8

# Metadata: one vector per item, METADATA_DIM wide, its layout declared in models.metadata_layout.

OUTPUT_NAME = "probability"


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]  # without the batch axis

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": [None, *self.shape]}


SIGNATURES: dict[str, tuple[TensorSpec, ...]] = {
    "visual": (
        TensorSpec("frames", "uint8", (MAX_FRAMES, CROP_SIZE, CROP_SIZE, 3)),
        TensorSpec("frame_mask", "float32", (MAX_FRAMES,)),
        TensorSpec("handcrafted", "float32", (VISUAL_HANDCRAFTED_DIM,)),
        TensorSpec("faces", "uint8", (MAX_FRAMES, CROP_SIZE, CROP_SIZE, 3)),
        TensorSpec("face_mask", "float32", (MAX_FRAMES,)),
    ),
    "audio": (
        TensorSpec("logmel", "float32", (MAX_WINDOWS, WINDOW_FRAMES, N_MELS)),
        TensorSpec("window_mask", "float32", (MAX_WINDOWS,)),
        TensorSpec("handcrafted", "float32", (AUDIO_HANDCRAFTED_DIM,)),
    ),
    "metadata": (TensorSpec("metadata", "float32", (METADATA_DIM,)),),
}


def _version_number(version: str) -> int | None:
    return int(version[1:]) if re.fullmatch(r"f\d+", version) else None


def reads_current_inputs(modality: str, trained_on: str) -> bool:
    """Whether a `modality` model trained on features of version `trained_on` reads the inputs
    this pipeline extracts (an unknown version reads nothing it can trust)."""
    number = _version_number(trained_on)
    return number is not None and _version_number(INPUTS_SINCE[modality]) <= number <= _version_number(FEATURE_VERSION)


def check_inputs(modality: str, inputs: dict[str, np.ndarray]) -> None:
    """Raises ValueError when `inputs` (one example, no batch axis) do not fit the signature."""
    for spec in SIGNATURES[modality]:
        if spec.name not in inputs:
            raise ValueError(f"{modality} input {spec.name!r} is missing")
        array = inputs[spec.name]
        if tuple(array.shape) != spec.shape or array.dtype != np.dtype(spec.dtype):
            raise ValueError(
                f"{modality} input {spec.name!r}: expected {spec.dtype}{list(spec.shape)}, "
                f"got {array.dtype}{list(array.shape)}"
            )
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise ValueError(f"{modality} input {spec.name!r} holds NaN or infinite values")
