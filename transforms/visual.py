"""Visual features: sampled frames as a fixed tensor plus cheap forensic signals.

Hand-made signals (per frame, averaged over frames), in `handcrafted` order:
  0-11  radial log power spectrum, 12 bands from low to high frequency, mean-removed
  12    spectral peak score: max/median power in the high band (periodic upsampling grids)
  13    checkerboard energy at the Nyquist corners (transposed-convolution traces)
  14    share of power above half the Nyquist frequency
  15-16 noise residual standard deviation and kurtosis (sensor noise is missing in renders)
  17    log Laplacian variance (sharpness)
  18    8x8 blockiness (JPEG/H.264 grid strength)
  19-20 saturation mean and spread
  21    noise residual ratio, centre vs periphery (blending seams and swapped faces)
  22    mean absolute change between sampled frames (temporal consistency)
  23    spread of the noise residual across frames
"""

from __future__ import annotations

import dataclasses
import itertools

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from models.signature import CROP_SIZE, MAX_FRAMES, VISUAL_HANDCRAFTED_DIM
from schemas.records import MediaFeatures, VisualFeatures
from transforms.dead_letter import MediaStep
from transforms.limits import MediaLimits
from transforms.media import decode_image_frames, decode_video_frames, open_image

_ANALYSIS_SIZE = 256
_RADIAL_BANDS = 12


def centre_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """A native-resolution `size` x `size` centre crop; smaller frames are upscaled first."""
    height, width = frame.shape[:2]
    if min(height, width) < size:
        scale = size / min(height, width)
        rows = np.minimum((np.arange(int(np.ceil(height * scale))) / scale).astype(int), height - 1)
        cols = np.minimum((np.arange(int(np.ceil(width * scale))) / scale).astype(int), width - 1)
        frame = frame[rows][:, cols]
        height, width = frame.shape[:2]
    top, left = (height - size) // 2, (width - size) // 2
    return frame[top : top + size, left : left + size]


def _grey(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _box_blur3(image: np.ndarray) -> np.ndarray:
    padded = np.pad(image, 1, mode="reflect")
    total = np.zeros_like(image)
    for dy in range(3):
        for dx in range(3):
            total += padded[dy : dy + image.shape[0], dx : dx + image.shape[1]]
    return total / 9.0


def _radial_profile(power: np.ndarray) -> np.ndarray:
    height, width = power.shape
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    radius = np.sqrt(fy**2 + fx**2) / np.sqrt(0.5)  # 0 at DC, 1 at the corner
    bands = np.minimum((radius * _RADIAL_BANDS).astype(int), _RADIAL_BANDS - 1)
    sums = np.bincount(bands.ravel(), weights=power.ravel(), minlength=_RADIAL_BANDS)
    counts = np.bincount(bands.ravel(), minlength=_RADIAL_BANDS)
    return np.log(sums / np.maximum(counts, 1) + 1e-8)


def frame_signals(frame: np.ndarray) -> np.ndarray:
    """Per-frame forensic signals (entries 0-21 of the handcrafted vector, see module doc)."""
    grey = _grey(centre_crop(frame, min(_ANALYSIS_SIZE, *frame.shape[:2])))
    grey = grey - grey.mean()
    window = np.outer(np.hanning(grey.shape[0]), np.hanning(grey.shape[1])).astype(np.float32)
    power = np.abs(np.fft.fft2(grey * window)) ** 2
    profile = _radial_profile(power)
    profile = profile - profile.mean()

    shifted = np.fft.fftshift(power)
    height, width = shifted.shape
    fy = np.abs(np.arange(height) - height // 2)[:, None] / (height / 2)
    fx = np.abs(np.arange(width) - width // 2)[None, :] / (width / 2)
    high = np.maximum(fy, fx) > 0.5
    high_power = shifted[high]
    peak_score = np.log((high_power.max() + 1e-8) / (np.median(high_power) + 1e-8))
    total_power = power.sum() + 1e-8
    corners = power[height // 2, 0] + power[0, width // 2] + power[height // 2, width // 2]
    checkerboard = np.log(corners / total_power + 1e-12)
    high_share = high_power.sum() / total_power

    residual = grey - _box_blur3(grey)
    residual_std = residual.std()
    kurtosis = float(np.mean(residual**4) / (residual_std**4 + 1e-8))
    laplacian = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    cols = np.abs(np.diff(grey, axis=1))
    on_grid = cols[:, 7::8].mean() if cols.shape[1] > 8 else 0.0
    blockiness = np.log((on_grid + 1e-3) / (cols.mean() + 1e-3))

    rgb = frame.astype(np.float32) / 255.0
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    ry, rx = residual.shape[0] // 4, residual.shape[1] // 4
    centre = residual[ry:-ry, rx:-rx] if ry and rx else residual
    periphery_mask = np.ones_like(residual, dtype=bool)
    if ry and rx:
        periphery_mask[ry:-ry, rx:-rx] = False
    centre_ratio = np.log((centre.std() + 1e-3) / (residual[periphery_mask].std() + 1e-3))

    return np.concatenate(
        [
            profile,
            [
                peak_score,
                checkerboard,
                high_share,
                np.log(residual_std + 1e-3),
                np.log(kurtosis + 1e-3),
                np.log(laplacian.var() + 1e-3),
                blockiness,
                saturation.mean(),
                saturation.std(),
                centre_ratio,
            ],
        ]
    ).astype(np.float32)


def visual_features(frames: list[np.ndarray], frame_selection: str) -> VisualFeatures:
    """Builds the fixed-size visual tensor and handcrafted vector from decoded RGB frames."""
    if not frames:
        raise ValueError("visual_features needs at least one frame")
    frames = frames[:MAX_FRAMES]
    tensor = np.zeros((MAX_FRAMES, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    mask = np.zeros((MAX_FRAMES,), dtype=np.float32)
    crops = []
    for index, frame in enumerate(frames):
        crop = centre_crop(frame, CROP_SIZE)
        tensor[index], mask[index] = crop, 1.0
        crops.append(_grey(crop))
    per_frame = np.stack([frame_signals(f) for f in frames])
    if len(crops) > 1:
        temporal = float(np.mean([np.abs(a - b).mean() for a, b in itertools.pairwise(crops)]) / 255.0)
    else:
        temporal = 0.0
    residual_spread = float(per_frame[:, 15].std())
    handcrafted = np.concatenate([per_frame.mean(axis=0), [temporal, residual_spread]]).astype(np.float32)
    assert handcrafted.shape == (VISUAL_HANDCRAFTED_DIM,)
    return VisualFeatures(frames=tensor, frame_mask=mask, frame_selection=frame_selection, handcrafted=handcrafted)


def extract_visual(data: bytes, media_type: str, limits: MediaLimits) -> VisualFeatures | None:
    """Visual features of an image or a video's picture track; None for audio-only media."""
    if media_type == "image":
        image = open_image(data, limits)
        frames = decode_image_frames(image, MAX_FRAMES)
        return visual_features(frames, "still" if len(frames) == 1 else "animation")
    if media_type == "video":
        frames, selection = decode_video_frames(data, MAX_FRAMES, limits)
        return visual_features(frames, selection)
    return None


class _ExtractVisualDoFn(beam.DoFn):
    def __init__(self, limits: MediaLimits):
        self._limits = limits
        self._frames = Metrics.distribution("features", "visual_frames")

    def process(self, item: MediaFeatures):
        visual = extract_visual(item.data, item.info.media_type, self._limits)
        if visual is not None:
            self._frames.update(visual.frame_count)
        yield dataclasses.replace(item, visual=visual)


class ExtractVisualFeatures(MediaStep):
    """MediaFeatures -> MediaFeatures with `visual` set; undecodable pictures dead-lettered."""

    DOFN = _ExtractVisualDoFn
    STEP = "extract_visual"
