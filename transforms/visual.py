"""Visual features: sampled frames as a fixed tensor plus cheap forensic signals.

Hand-made signals: the `handcrafted` vector's layout is declared in `models/visual_layout.py`
(`python -m models.visual_layout` prints it with offsets); `visual_features` packs it by name.

Faces come from OpenCV's bundled frontal-face Haar cascade ("alt2", works offline), run on
each sampled frame scaled to 256 px on its longer side (small frames scaled up); the largest
face is cropped with a margin that keeps its boundary and resized to the crop size, slot for
slot with the frames.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import NamedTuple

import cv2
import numpy as np
from apache_beam.metrics import Metrics
from PIL import Image

from models.signature import CROP_SIZE, MAX_FRAMES
from models.visual_layout import FRAME, VISUAL
from schemas.records import MediaFeatures, VisualFeatures
from transforms.dead_letter import MediaDoFn, MediaStep
from transforms.hashbank import frame_hashes
from transforms.limits import MediaLimits, UnsupportedMedia
from transforms.media import (
    CUT_SHORT,
    Media,
    decode_image_frames,
    decode_video_frames,
    image_frame_count,
    media_size,
    open_image,
)

_ANALYSIS_SIZE = 256
_RADIAL_BANDS = 12
_BLOCK = 8
_FACE_MARGIN = 1.3  # crop side / face box side: the seam of a pasted face lies just outside the box
_FACE_DETECT_SIDE = 256  # detect on the frame scaled to this longer side
_FACE_MIN_SIDE = 24  # px at detection scale: the cascade's window
_RING_WIDTH = 0.1  # face noise profile: ring width in half box sides
_RINGS = 16  # out to 1.6 half box sides: past the head into the background
_RING_REFERENCE = slice(2, 5)  # rings 0.2-0.5: the middle of the face
_MIN_RING_PIXELS = 20
_FACE_SIGNALS = 4 + _RINGS  # per-frame signals averaged over the frames with a face only
_COOC_TRUNCATION = 2  # residuals in whole levels, truncated to [-2, 2]: 5 values, 125 runs of 3
_FACE_INSIDE = 0.55  # co-occurrence zones, in half face box sides from the face centre
_FACE_AROUND = (0.9, 1.6)
_MOTION_MIN_SIDE = 8  # px: the face's inside zone needs this much texture to be tracked
_MOTION_MIN_TEXTURE = 1.0  # grey levels of spread, in each zone
_MOTION_SIGNALS = 6
_MOTION_TAPER = 0.1  # half box sides: soft edge of the zone hidden when measuring the motion around a face
_ZONE_SIGNALS = 12
_ZONE_MIN_PIXELS = 16
_DETAIL_SIGMAS = (0.7, 1.4, 2.8)  # px: Gaussian scales splitting detail into fine, middle and coarse
MIN_SIDE = 16  # px: below this the spectral and block signals have nothing to measure
# The noise, periodicity, texture and co-occurrence signals read a fixed pixel budget: the whole
# frame when it holds no more than a 3x3 grid of 192-px tiles, else such a grid spread evenly
# over it, at native resolution (tile corners on the 8-px coding grid, so block and phase
# statistics keep the encoder's alignment). The face's signals read the window around the face.
_TILE = 192
_TILE_GRID = 3
_FILTER_MARGIN = 4  # px around the face window: the reach of the residual and local-noise filters

FaceBox = tuple[int, int, int, int]  # x, y, width, height in frame pixels


@functools.cache
def _face_cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml")
    if cascade.empty():
        raise RuntimeError("OpenCV's frontal-face Haar cascade did not load")
    return cascade


def detect_face(frame: np.ndarray) -> FaceBox | None:
    """The largest frontal face in an RGB frame, or None.

    The frame is scaled so that its longer side is `_FACE_DETECT_SIDE`: down for speed, and up
    for small uploads, whose faces are otherwise too small for the cascade's window.
    """
    height, width = frame.shape[:2]
    scale = _FACE_DETECT_SIDE / max(height, width)
    scaled = (round(width * scale), round(height * scale))
    if min(scaled) < _FACE_MIN_SIDE:  # a long thin strip: no face fits the cascade's window
        return None
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if scale != 1.0:
        grey = cv2.resize(grey, scaled, interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)
    faces = _face_cascade().detectMultiScale(
        grey, scaleFactor=1.1, minNeighbors=4, minSize=(_FACE_MIN_SIDE, _FACE_MIN_SIDE)
    )
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return round(x / scale), round(y / scale), round(w / scale), round(h / scale)


def face_crop(frame: np.ndarray, box: FaceBox, size: int) -> np.ndarray:
    """A square crop around the face with margin, clipped to the frame, resized to `size`."""
    x, y, w, h = box
    side = int(max(w, h) * _FACE_MARGIN)
    cx, cy = x + w // 2, y + h // 2
    top, left = max(cy - side // 2, 0), max(cx - side // 2, 0)
    crop = frame[top : top + side, left : left + side]
    interpolation = cv2.INTER_AREA if min(crop.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=interpolation)


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


@functools.lru_cache(maxsize=16)
def _spectrum_layout(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For a `height` x `width` analysis crop: its Hann window, the radial band of each
    (unshifted) frequency with each band's count, and where the high band lies (shifted)."""
    window = np.outer(np.hanning(height), np.hanning(width)).astype(np.float32)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    radius = np.sqrt(fy**2 + fx**2) / np.sqrt(0.5)  # 0 at DC, 1 at the corner
    bands = np.minimum((radius * _RADIAL_BANDS).astype(int), _RADIAL_BANDS - 1).ravel()
    counts = np.bincount(bands, minlength=_RADIAL_BANDS)
    fy = np.abs(np.arange(height) - height // 2)[:, None] / (height / 2)
    fx = np.abs(np.arange(width) - width // 2)[None, :] / (width / 2)
    return window, bands, counts, np.maximum(fy, fx) > 0.5


def _radial_profile(power: np.ndarray) -> np.ndarray:
    _, bands, counts, _ = _spectrum_layout(*power.shape)
    sums = np.bincount(bands, weights=power.ravel(), minlength=_RADIAL_BANDS)
    return np.log(sums / np.maximum(counts, 1) + 1e-8)


def _saturation_stats(frame: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of max(R, G, B) - min(R, G, B), in [0, 1]: per channel on
    the 8-bit picture (a reduction over a last axis of three is slow in numpy)."""
    red, green, blue = frame[..., 0], frame[..., 1], frame[..., 2]
    spread = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    mean, std = cv2.meanStdDev(np.ascontiguousarray(spread))
    return float(mean[0, 0]) / 255.0, float(std[0, 0]) / 255.0


def frame_signals(frame: np.ndarray) -> np.ndarray:
    """Per-frame forensic signals (`models.visual_layout.FRAME`: spectrum through centre_residual_ratio)."""
    grey = _grey(centre_crop(frame, min(_ANALYSIS_SIZE, *frame.shape[:2])))
    grey = grey - grey.mean()
    window, _, _, high = _spectrum_layout(*grey.shape)
    power = np.abs(np.fft.fft2(grey * window)) ** 2
    profile = _radial_profile(power)
    profile = profile - profile.mean()

    shifted = np.fft.fftshift(power)
    height, width = shifted.shape
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

    saturation_mean, saturation_std = _saturation_stats(frame)
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
                saturation_mean,
                saturation_std,
                centre_ratio,
            ],
        ]
    ).astype(np.float32)


def _run_code(a, b, c):
    """Code of a run of three residual levels, each shifted to 0..2T: base-(2T+1) digits
    (ints or arrays)."""
    base = 2 * _COOC_TRUNCATION + 1
    return (a * base + b) * base + c


def _run_classes() -> tuple[np.ndarray, int]:
    """Class of every run code, with a run, its reverse and their negations in one class; and
    the number of classes."""
    t = _COOC_TRUNCATION
    runs = list(itertools.product(range(-t, t + 1), repeat=3))
    canonical = [min((a, b, c), (c, b, a), (-a, -b, -c), (-c, -b, -a)) for a, b, c in runs]
    classes = {run: index for index, run in enumerate(sorted(set(canonical)))}
    table = np.zeros(len(runs), np.int64)
    for (a, b, c), run in zip(runs, canonical):
        table[_run_code(a + t, b + t, c + t)] = classes[run]
    return table, len(classes)


_RUN_CLASS, COOC_CLASSES = _run_classes()


def run_class(a: int, b: int, c: int) -> int:
    """The class of the run of truncated residuals (a, b, c) in the co-occurrence signals."""
    t = _COOC_TRUNCATION
    return int(_RUN_CLASS[_run_code(a + t, b + t, c + t)])


_DIFFERENCES = (np.array([[-1, 1]], np.float32), np.array([[1, -2, 1]], np.float32))  # first, second order
_KB = np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]], np.float32) / 4.0


def _levels(residual: np.ndarray) -> np.ndarray:
    """Residuals in whole levels truncated to [-T, T], shifted to 0..2T (uint8)."""
    rounded = np.rint(residual)
    np.clip(rounded, -_COOC_TRUNCATION, _COOC_TRUNCATION, out=rounded)
    return (rounded + _COOC_TRUNCATION).astype(np.uint8)


def _run_codes(levels: np.ndarray) -> np.ndarray:
    """Code of each run of three horizontally adjacent levels, [rows, cols - 2] (uint8: under 125)."""
    return _run_code(levels[:, :-2], levels[:, 1:-1], levels[:, 2:])


def _residual_runs(grey: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per residual (first order, second order, KB): run codes along rows and along columns
    (the latter on the transposed picture), each entry [i, j] centred on pixel (i, j + 1) of the
    picture it scanned; residuals keep the picture's size (borders mirrored)."""
    transposed = np.ascontiguousarray(grey.T)
    runs = [
        (_run_codes(_levels(cv2.filter2D(grey, -1, kernel))), _run_codes(_levels(cv2.filter2D(transposed, -1, kernel))))
        for kernel in _DIFFERENCES
    ]
    kb = _levels(cv2.filter2D(grey, -1, _KB))  # symmetric: the transposed picture's KB residual is this one's transpose
    return [*runs, (_run_codes(kb), _run_codes(kb.T))]


_RUN_CODES = (2 * _COOC_TRUNCATION + 1) ** 3


def _class_counts(codes: tuple[np.ndarray, np.ndarray], masks: tuple[np.ndarray, np.ndarray] | None = None):
    """Counts of the run classes along rows and columns (where the masks, if given, are true)."""
    total = np.zeros(_RUN_CODES, np.float64)
    for index, part in enumerate(codes):
        mask = None if masks is None else masks[index].view(np.uint8)
        total += cv2.calcHist([part], [0], mask, [_RUN_CODES], [0, _RUN_CODES]).ravel()  # exact below 2**24
    return np.bincount(_RUN_CLASS, weights=total, minlength=COOC_CLASSES)


def cooccurrence_counts(
    frame: np.ndarray, face: FaceBox | None, regions: FrameRegions | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Residual run-class counts of one frame: over its analysis tiles [3, COOC_CLASSES] (first
    order, second order, KB), and inside / around the face [2 zones, 2 residuals (first order,
    KB), COOC_CLASSES], None without a face. `regions`: the frame's `frame_regions`, when the
    caller has them."""
    regions = regions or frame_regions(frame, face)
    whole = sum(np.stack([_class_counts(codes) for codes in _residual_runs(tile)]) for tile in regions.tiles)
    if regions.face is None:
        return whole, None
    runs = _residual_runs(regions.face_grey)
    # Only pixels within reach of the face get a distance: the rest lie outside every zone.
    window, within = _face_distance(regions.face, regions.face_grey.shape, _FACE_AROUND[1])
    distance = np.full(regions.face_grey.shape, np.inf, np.float32)
    distance[window] = within
    # Run [i, j] is centred on pixel (i, j + 1) of the picture (rows) or its transpose (columns).
    centres = (distance[:, 1:-1], distance.T[:, 1:-1])
    zones = []
    for low, high in ((0.0, _FACE_INSIDE), _FACE_AROUND):
        masks = tuple((d >= low) & (d < high) for d in centres)
        zones.append([_class_counts(runs[index], masks) for index in (0, 2)])
    return whole, np.array(zones)


def cooccurrence_signals(counts: list[tuple[np.ndarray, np.ndarray | None]]) -> np.ndarray:
    """The `spam_whole` and `spam_face` signals from the frames' `cooccurrence_counts`."""

    def frequencies(total: np.ndarray) -> np.ndarray:
        return total / np.maximum(total.sum(axis=-1, keepdims=True), 1)

    whole = frequencies(sum(c[0] for c in counts))
    faces = [c[1] for c in counts if c[1] is not None]
    face = np.zeros((2, COOC_CLASSES), np.float64)
    if faces:
        inside, around = frequencies(sum(faces))
        if inside.sum() > 0 and around.sum() > 0:
            face = inside - around
    return np.concatenate([whole.ravel(), face.ravel()]).astype(np.float32)


def _log_median(values: np.ndarray) -> float:
    return float(np.log(np.median(values) + 1e-3)) if values.size else 0.0


def _face_masks(shape: tuple[int, int], box: FaceBox) -> tuple[np.ndarray, np.ndarray]:
    """Inside of the face ellipse, and a ring just outside it (where a pasted face's seam is)."""
    x, y, w, h = box
    centre, axes = (x + w / 2, y + h / 2), (w / 2, h * 0.6)
    inner, outer = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    cv2.ellipse(
        inner, (round(centre[0]), round(centre[1])), (round(axes[0] * 0.8), round(axes[1] * 0.8)), 0, 0, 360, 1, -1
    )
    cv2.ellipse(
        outer, (round(centre[0]), round(centre[1])), (round(axes[0] * 1.25), round(axes[1] * 1.25)), 0, 0, 360, 1, -1
    )
    ring = (outer > 0) & ~(cv2.dilate(inner, np.ones((5, 5), np.uint8), iterations=2) > 0)
    return inner > 0, ring


def _face_window(face: FaceBox, shape: tuple[int, int], reach: float, margin: int = 0) -> tuple[slice, slice]:
    """The rectangle of a frame of `shape` within `reach` half box sides of the face centre
    (x scaled by the box's half width, y by its half height), widened by `margin` px; may be empty.
    With a margin it starts on even pixels, so that the face's ellipses, whose centres are
    rounded half to even, fall on the same pixels in the window as in the frame."""
    x, y, w, h = face
    cx, cy, half_w, half_h = x + w / 2, y + h / 2, max(w / 2, 1.0), max(h / 2, 1.0)
    top, left = int(cy - reach * half_h), int(cx - reach * half_w)
    if margin:
        top, left = (top - margin) // 2 * 2, (left - margin) // 2 * 2
    top, bottom = max(top, 0), min(int(np.ceil(cy + reach * half_h)) + 1 + margin, shape[0])
    left, right = max(left, 0), min(int(np.ceil(cx + reach * half_w)) + 1 + margin, shape[1])
    return slice(top, max(bottom, top)), slice(left, max(right, left))


def _face_distance(face: FaceBox, shape: tuple[int, int], reach: float) -> tuple[tuple[slice, slice], np.ndarray]:
    """`_face_window` (no margin), and each of its pixels' elliptical distance from the face
    centre in half box sides."""
    x, y, w, h = face
    cx, cy, half_w, half_h = x + w / 2, y + h / 2, max(w / 2, 1.0), max(h / 2, 1.0)
    rows, cols = _face_window(face, shape, reach)
    yy, xx = np.mgrid[rows, cols].astype(np.float32)
    return (rows, cols), np.hypot((xx - cx) / half_w, (yy - cy) / half_h)


def analysis_tiles(height: int, width: int) -> list[tuple[slice, slice]]:
    """Where a frame's noise, periodicity, texture and co-occurrence signals are read: the whole
    frame within the pixel budget, else `_TILE_GRID` x `_TILE_GRID` tiles of `_TILE` px (shorter
    where the frame is) spread evenly, each starting on the 8-px grid."""
    if height * width <= (_TILE_GRID * _TILE) ** 2:
        return [(slice(0, height), slice(0, width))]

    def spans(length: int) -> list[slice]:
        size = min(_TILE, length)
        starts = sorted({int(start) // _BLOCK * _BLOCK for start in np.linspace(0, length - size, _TILE_GRID)})
        return [slice(start, start + size) for start in starts]

    return [(rows, cols) for rows in spans(height) for cols in spans(width)]


class FrameRegions(NamedTuple):
    """The grey pictures a frame's noise and co-occurrence signals read: its `analysis_tiles`
    with the face box in each tile's coordinates, and the window around the face (out to the
    co-occurrence zones' reach, plus the filters' margin) with the face box in its coordinates.
    Without a face: the boxes and the window are None."""

    tiles: list[np.ndarray]
    tile_faces: list[FaceBox | None]
    face_grey: np.ndarray | None
    face: FaceBox | None


def _moved_box(face: FaceBox | None, rows: slice, cols: slice) -> FaceBox | None:
    return None if face is None else (face[0] - cols.start, face[1] - rows.start, face[2], face[3])


def frame_regions(frame: np.ndarray, face: FaceBox | None) -> FrameRegions:
    spans = analysis_tiles(*frame.shape[:2])
    tiles = [_grey(frame[rows, cols]) for rows, cols in spans]
    tile_faces = [_moved_box(face, rows, cols) for rows, cols in spans]
    if face is None:
        return FrameRegions(tiles, tile_faces, None, None)
    rows, cols = _face_window(face, frame.shape[:2], _FACE_AROUND[1], _FILTER_MARGIN)
    return FrameRegions(tiles, tile_faces, _grey(frame[rows, cols]), _moved_box(face, rows, cols))


def face_noise_profile(local_noise: np.ndarray, face: FaceBox) -> np.ndarray:
    """Log median local noise per elliptical ring around the face, relative to the face's middle.

    Rings are 0.1 half box sides wide (x and y scaled by the box's half width and height), out
    to 1.6; a ring with too few pixels in the frame, or a profile without its reference rings,
    reads 0.
    """
    window, distance = _face_distance(face, local_noise.shape, _RINGS * _RING_WIDTH)
    profile = np.zeros(_RINGS, np.float32)
    if distance.size == 0:
        return profile
    ring = (distance / _RING_WIDTH).astype(np.int32)
    noise = local_noise[window]
    filled = np.zeros(_RINGS, bool)
    for index in range(_RINGS):
        values = noise[ring == index]
        if values.size >= _MIN_RING_PIXELS:
            profile[index], filled[index] = np.log(np.median(values) + 1e-3), True
    if not filled[_RING_REFERENCE].any():
        return np.zeros(_RINGS, np.float32)
    reference = profile[_RING_REFERENCE][filled[_RING_REFERENCE]].mean()
    return np.where(filled, profile - reference, 0.0).astype(np.float32)


def encoding_signals(bits_per_pixel: float, quantiser: float | None, palette_colours: int | None) -> np.ndarray:
    """How hard the picture was compressed (`bits_per_pixel`, `jpeg_quantiser`, `palette_size`)."""
    return np.array(
        [
            np.log(max(bits_per_pixel, 0.0) + 1e-4),
            np.log(quantiser) if quantiser else 0.0,
            min(palette_colours, 256) / 256 if palette_colours else 0.0,
        ],
        dtype=np.float32,
    )


def image_encoding(image: Image.Image, stored_bytes: int) -> np.ndarray:
    """`encoding_signals` of an opened (not yet decoded) image file."""
    pixels = max(image.width * image.height, 1) * image_frame_count(image)
    quantiser = None
    tables = getattr(image, "quantization", None)
    if image.format in ("JPEG", "MPO") and tables:
        quantiser = float(np.mean(tables[min(tables)]))  # the first table quantises luminance
    palette = None
    if image.mode in ("P", "PA") and image.palette is not None:
        palette = len(image.palette.colors) or len(image.getpalette() or []) // 3
    return encoding_signals(stored_bytes * 8 / pixels, quantiser, palette)


def _block_means(image: np.ndarray) -> np.ndarray:
    """Mean of each whole 8x8 block (area averaging by a whole factor), row by row."""
    rows, cols = image.shape[0] // _BLOCK, image.shape[1] // _BLOCK
    return cv2.resize(image[: rows * _BLOCK, : cols * _BLOCK], (cols, rows), interpolation=cv2.INTER_AREA).ravel()


def _phase_sums(magnitude: np.ndarray) -> tuple[np.ndarray, int]:
    """Sums of `magnitude` over each phase (i, j) of the 8-px grid, [8, 8], in one pass, and
    the number of whole 8x8 blocks they sum over."""
    rows, cols = magnitude.shape[0] // 8, magnitude.shape[1] // 8
    sums = magnitude[: rows * 8, : cols * 8].reshape(rows, 8, cols * 8).sum(axis=0, dtype=np.float64)
    return sums.reshape(8, cols, 8).sum(axis=1), rows * cols


def _phase_means(sums: np.ndarray, blocks: int, period: int) -> np.ndarray:
    """Mean magnitude over each phase of a `period` grid (a divisor of 8), from `_phase_sums`:
    each phase of a divisor sums whole 8x8 phases."""
    folded = sums.reshape(8 // period, period, 8 // period, period).sum(axis=(0, 2))
    return (folded / max(blocks * (8 // period) ** 2, 1)).ravel()


@functools.lru_cache(maxsize=16)
def _regularity_mask(height: int, width: int) -> np.ndarray:
    """Where the texture autocorrelation's regularity peak is looked for: lags between 5 px and
    a third of the shorter side, laid out as the unshifted (circular) autocorrelation is."""
    yy, xx = np.mgrid[0:height, 0:width]
    radius = np.hypot(yy - height // 2, xx - width // 2)
    return np.fft.ifftshift((radius > 5) & (radius < min(height, width) / 3))


def _texture_regularity(textures: list[np.ndarray]) -> float:
    """Highest normalised circular autocorrelation at the lags of `_regularity_mask`, of the
    power spectrum summed over `textures` (pictures of one size; Wiener-Khinchin: the inverse
    transform of the power spectrum is the autocorrelation), in single precision."""
    import scipy.fft

    power = None
    for texture in textures:
        spectrum = scipy.fft.rfft2(texture.astype(np.float32, copy=False))
        part = (spectrum.real**2 + spectrum.imag**2).astype(np.float32, copy=False)
        power = part if power is None else power + part
    shape = textures[0].shape
    autocorrelation = scipy.fft.irfft2(power, s=shape)
    return float(autocorrelation[_regularity_mask(*shape)].max() / (autocorrelation[0, 0] + 1e-8))


def _local_noise_and_sharpness(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local noise (RMS of the 3x3 residual over 5x5) and sharpness (|Laplacian|) of each pixel."""
    residual = grey - cv2.blur(grey, (3, 3))
    # The box filter's running sums can leave a flat region's mean square a rounding error
    # below zero; its square root would be NaN, and so would every median it entered.
    mean_square = np.maximum(cv2.blur(residual**2, (5, 5)), 0.0)
    return np.sqrt(mean_square), np.abs(cv2.Laplacian(grey, cv2.CV_32F))


def noise_signals(frame: np.ndarray, face: FaceBox | None, regions: FrameRegions | None = None) -> np.ndarray:
    """Per-frame noise, periodicity, texture and face-consistency signals: the first over the
    frame's analysis tiles, the face's over the window around the face, compared with the rest
    of that window (`regions`: the frame's `frame_regions`, when the caller has them).

    Returns `flat_noise` through `face_boundary_step`, then the 16 `face_rings`.
    """
    regions = regions or frame_regions(frame, face)
    noise, means, details, textures = [], [], [], []
    phase_sums, blocks = np.zeros((8, 8), np.float64), 0
    for grey in regions.tiles:
        blurred = cv2.blur(grey, (3, 3))
        residual = grey - blurred
        noise.append(np.sqrt(np.maximum(_block_means(residual * residual) - _block_means(residual) ** 2, 0.0)))
        means.append(_block_means(grey))
        details.append(_block_means(np.abs(blurred - cv2.blur(blurred, (7, 7)))))
        sums, count = _phase_sums(np.abs(residual))
        phase_sums, blocks = phase_sums + sums, blocks + count
        textures.append(grey - cv2.blur(grey, (15, 15)))
    block_noise, block_mean, block_detail = (np.concatenate(parts) for parts in (noise, means, details))
    flat = block_detail <= np.percentile(block_detail, 40)
    low, high = np.percentile(block_mean[flat], [33, 66]) if flat.sum() >= 6 else (85.0, 170.0)
    dark = _log_median(block_noise[flat & (block_mean < low)])
    middle = _log_median(block_noise[flat & (block_mean >= low) & (block_mean < high)])
    bright = _log_median(block_noise[flat & (block_mean >= high)])
    log_noise = np.log(block_noise + 1e-3)
    median = np.median(log_noise)
    spread = [log_noise.std(), np.percentile(log_noise, 95) - median, median - np.percentile(log_noise, 5)]

    periodicity = []
    for period in (2, 4, 8):
        phases = _phase_means(phase_sums, blocks, period)
        periodicity.append(np.log(phases.std() / (phases.mean() + 1e-6) + 1e-4))

    regularity = _texture_regularity(textures)

    face_noise = face_share = face_sharpness = seam = 0.0
    rings = np.zeros(_RINGS, np.float32)
    if regions.face is not None:
        local_noise, sharpness = _local_noise_and_sharpness(regions.face_grey)
        rings = face_noise_profile(local_noise, regions.face)
        inside, ring = _face_masks(regions.face_grey.shape, regions.face)
        # The rest of the frame: the tiles' pixels outside the face (the whole frame within the budget).
        outside_noise, outside_sharpness = [], []
        for grey, box in zip(regions.tiles, regions.tile_faces):
            tile_noise, tile_sharpness = _local_noise_and_sharpness(grey)
            outside = ~np.logical_or(*_face_masks(grey.shape, box))
            outside_noise.append(tile_noise[outside])
            outside_sharpness.append(tile_sharpness[outside])
        outside_noise, outside_sharpness = np.concatenate(outside_noise), np.concatenate(outside_sharpness)
        if inside.sum() > 64 and outside_noise.size > 64 and ring.sum() > 16:
            face_noise = _log_median(local_noise[inside]) - _log_median(outside_noise)
            face_sharpness = _log_median(sharpness[inside]) - _log_median(outside_sharpness)
            seam = _log_median(local_noise[ring]) - _log_median(local_noise[inside])
            face_share = float(inside.sum()) / (frame.shape[0] * frame.shape[1])
    return np.array(
        [dark, middle, bright, _log_median(block_noise[flat]), bright - dark, *spread, *periodicity, regularity,
         face_noise, face_share, face_sharpness, seam, *rings],
        dtype=np.float32,
    )  # fmt: skip


def _shift(before: np.ndarray, after: np.ndarray, hidden: np.ndarray | None = None, taper: float = 0.0):
    """Sub-pixel translation (dx, dy) from `before` to `after` by phase correlation, and its
    peak response (near 1 when the patch moved as one piece).

    Pixels under `hidden` take no part: both patches are weighted by a window that is zero
    there, its edge softened by a Gaussian of `taper` px. A window stays put in both patches
    and so pulls the estimate towards no motion (on a face-sized patch, by a third to a half
    of the shift); `after` is moved back by the first estimate and the rest measured again,
    which recovers about half of what the first pass missed. What is left is the same for a
    filmed face and a pasted one: the signals compare the two, they do not need exact motion.
    """
    before, after = before.astype(np.float32), after.astype(np.float32)
    window = cv2.createHanningWindow((before.shape[1], before.shape[0]), cv2.CV_32F)
    if hidden is not None:
        before -= before[~hidden].mean()
        after -= after[~hidden].mean()
        window *= cv2.GaussianBlur((~hidden).astype(np.float32), (0, 0), max(taper, 0.5))
    (dx, dy), _ = cv2.phaseCorrelate(before, after, window)
    back = np.float32([[1, 0, -dx], [0, 1, -dy]])
    moved = cv2.warpAffine(after, back, (after.shape[1], after.shape[0]), borderMode=cv2.BORDER_REFLECT)
    (rest_x, rest_y), response = cv2.phaseCorrelate(before, moved, window)
    return np.array([dx + rest_x, dy + rest_y], np.float32), float(response)


def face_motion(grey: np.ndarray, successor: np.ndarray, face: FaceBox) -> np.ndarray | None:
    """How the inside of a face moves between a frame and the next against the head and
    background around it, by phase correlation of each zone (the co-occurrence zones' reach:
    inside, the rectangle within 0.55 half box sides of the face centre; around, the one out
    to 1.6 with everything within 0.9 of the centre, elliptically, hidden). A face pasted frame by frame is placed anew each frame and wobbles against the
    head it sits in; a filmed face moves with it.

    Returns [dx, dy] of inside minus around (px), the inside's peak response, the around
    zone's motion (px) and the face's half box side (px), or None when the face is too small
    for the zones to hold texture.
    """
    inside, _ = _face_distance(face, grey.shape, _FACE_INSIDE)
    window, distance = _face_distance(face, grey.shape, _FACE_AROUND[1])
    hidden = distance < _FACE_AROUND[0]
    if min(grey[inside].shape) < _MOTION_MIN_SIDE or (~hidden).sum() < _MOTION_MIN_SIDE**2:
        return None
    if grey[inside].std() < _MOTION_MIN_TEXTURE or grey[window][~hidden].std() < _MOTION_MIN_TEXTURE:
        return None  # a flat patch has no motion to find
    inner_shift, inner_response = _shift(grey[inside], successor[inside])
    half_side = float(np.sqrt(face[2] * face[3])) / 2
    around_shift, _ = _shift(grey[window], successor[window], hidden, taper=_MOTION_TAPER * half_side)
    relative = inner_shift - around_shift
    motion = np.array([*relative, inner_response, np.hypot(*around_shift), half_side], np.float32)
    return motion if np.all(np.isfinite(motion)) else None


def face_zone_signals(frame: np.ndarray, face: FaceBox) -> np.ndarray | None:
    """Colour and lens-blur consistency of a face with the head and background around it
    (`face_tint`, `face_lens_blur`, `face_chroma_noise`), or None when a zone has too few pixels.

    Zones, in half box sides from the face centre: inside (within 0.55), the band where a
    pasted face's edge sits (0.55-0.9) and around (0.9-1.6). A face pasted after the camera
    missed its lens blur and chroma noise, and carries its source's tint.
    """
    window, distance = _face_distance(face, frame.shape[:2], _FACE_AROUND[1])
    zones = (distance < _FACE_INSIDE, (distance >= _FACE_INSIDE) & (distance < _FACE_AROUND[0]),
             distance >= _FACE_AROUND[0])  # fmt: skip
    if min(int(zone.sum()) for zone in zones) < _ZONE_MIN_PIXELS:
        return None
    ycc = cv2.cvtColor(frame[window].astype(np.float32) / 255.0, cv2.COLOR_RGB2YCrCb)
    tint = []
    for channel in (1, 2):
        medians = [float(np.median(ycc[..., channel][zone])) for zone in zones]
        tint += [medians[0] - medians[1], medians[0] - medians[2]]
    # Detail between successive blur scales: a lens-blurred capture loses the finest band first.
    luma = ycc[..., 0]
    blurred = [luma] + [cv2.GaussianBlur(luma, (0, 0), sigma) for sigma in _DETAIL_SIGMAS]
    bands = [np.abs(finer - coarser) for finer, coarser in itertools.pairwise(blurred)]
    detail = []
    for zone in zones:
        means = [float(band[zone].mean()) + 1e-4 for band in bands]
        detail += [np.log(means[0] / means[1]), np.log(means[1] / means[2])]
    chroma_noise = []
    for channel in (1, 2):
        plane = ycc[..., channel]
        noise = np.abs(plane - cv2.blur(plane, (3, 3)))
        chroma_noise.append(np.log((np.median(noise[zones[0]]) + 1e-4) / (np.median(noise[zones[2]]) + 1e-4)))
    signals = np.array([*tint, *detail, *chroma_noise], np.float32)
    return signals if np.all(np.isfinite(signals)) else None


def face_zone_means(zones: list[np.ndarray | None]) -> np.ndarray:
    """The mean `face_zone_signals` over the frames that have them (zeros for none)."""
    measured = [zone for zone in zones if zone is not None]
    return np.mean(measured, axis=0).astype(np.float32) if measured else np.zeros(_ZONE_SIGNALS, np.float32)


def face_motion_signals(motions: list[np.ndarray], frames: int) -> np.ndarray:
    """The `face_wobble` through `face_pairs_share` signals from the `face_motion` of each frame pair measured."""
    if not motions:
        return np.zeros(_MOTION_SIGNALS, np.float32)
    motion = np.stack(motions)
    if motion.shape[1] != 5:
        raise ValueError(f"face_motion gives 5 values per pair, got {motion.shape[1]}")
    dx, dy, rigidity, around, half_side = motion.T  # the order `face_motion` returns
    wobble = np.hypot(dx, dy)
    spread = float(motion[:, :2].std(axis=0).mean()) if len(motion) > 1 else 0.0  # of dx and dy
    return np.array(
        [np.log(wobble.mean() + 0.01), np.log((wobble / half_side).mean() + 1e-3), spread, rigidity.mean(),
         np.log(around.mean() + 0.01), len(motion) / frames],
        dtype=np.float32,
    )  # fmt: skip


def visual_features(
    frames: list[np.ndarray],
    frame_selection: str,
    encoding: np.ndarray,
    successors: list[np.ndarray | None] | None = None,
) -> VisualFeatures:
    """Builds the fixed-size visual tensor and handcrafted vector from decoded RGB frames.

    Args:
        frames: decoded RGB frames (the first MAX_FRAMES are used).
        frame_selection: how they were sampled ("still", "animation", "keyframes", "sequential";
            a video's with "+cut_short" when its stream ended before the frames it promised).
        encoding: `encoding_signals` of the stored picture.
        successors: for each frame, the grey picture of the frame after it, or None (a still,
            the last frame, one that did not decode): the face motion signals read these pairs.
    """
    if not frames:
        raise ValueError("visual_features needs at least one frame")
    height, width = frames[0].shape[:2]
    if min(height, width) < MIN_SIDE:
        raise UnsupportedMedia(
            f"picture is {width}x{height} px; the visual detector needs at least {MIN_SIDE} px on each side",
            reason="too_small",
        )
    frames = frames[:MAX_FRAMES]
    tensor = np.zeros((MAX_FRAMES, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    faces = np.zeros_like(tensor)
    mask = np.zeros((MAX_FRAMES,), dtype=np.float32)
    face_mask = np.zeros_like(mask)
    crops, boxes = [], []
    for index, frame in enumerate(frames):
        crop = centre_crop(frame, CROP_SIZE)
        tensor[index], mask[index] = crop, 1.0
        crops.append(_grey(crop))
        box = detect_face(frame)
        boxes.append(box)
        if box is not None:
            faces[index], face_mask[index] = face_crop(frame, box, CROP_SIZE), 1.0
    per_frame = np.stack([frame_signals(f) for f in frames])
    regions = [frame_regions(frame, box) for frame, box in zip(frames, boxes)]  # read by two signals
    per_frame_noise = np.stack([noise_signals(f, box, r) for f, box, r in zip(frames, boxes, regions)])
    # Face signals average over the frames that have a face, not over all frames.
    with_face = face_mask[: len(frames)] > 0
    noise_means = per_frame_noise.mean(axis=0)
    if with_face.any():
        noise_means[-_FACE_SIGNALS:] = per_frame_noise[with_face, -_FACE_SIGNALS:].mean(axis=0)
    if len(crops) > 1:
        temporal = float(np.mean([np.abs(a - b).mean() for a, b in itertools.pairwise(crops)]) / 255.0)
    else:
        temporal = 0.0
    residual_spread = float(per_frame[:, FRAME.slot("residual_std")].std())
    cooccurrences = cooccurrence_signals([cooccurrence_counts(f, box, r) for f, box, r in zip(frames, boxes, regions)])
    motions = [
        face_motion(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), after, box)
        for frame, after, box in zip(frames, successors or [], boxes)
        if after is not None and box is not None
    ]
    motion = face_motion_signals([m for m in motions if m is not None], len(frames))
    zones = face_zone_means([face_zone_signals(f, box) for f, box in zip(frames, boxes) if box is not None])
    handcrafted = VISUAL.pack(
        {
            "spectrum": per_frame.mean(axis=0),  # the per-frame signals, FRAME's layout
            "temporal_change": [temporal, residual_spread],
            "flat_noise": noise_means[:-_RINGS],
            "face_found_share": [with_face.mean()],
            "bits_per_pixel": encoding,
            "face_rings": noise_means[-_RINGS:],
            "spam_whole": cooccurrences,
            "face_wobble": motion,
            "face_tint": zones,
        }
    )
    hashes, hashed_frames = frame_hashes(frames)
    return VisualFeatures(
        frames=tensor,
        frame_mask=mask,
        frame_selection=frame_selection,
        handcrafted=handcrafted,
        faces=faces,
        face_mask=face_mask,
        pdq_hashes=hashes,
        pdq_frames=hashed_frames,
    )


def extract_visual(data: Media, media_type: str, limits: MediaLimits) -> VisualFeatures | None:
    """Visual features of an image or a video's picture track; None for audio-only media."""
    if media_type == "image":
        image = open_image(data, limits)
        encoding = image_encoding(image, media_size(data))
        frames = decode_image_frames(image, MAX_FRAMES)
        return visual_features(frames, "still" if len(frames) == 1 else "animation", encoding)
    if media_type == "video":
        video = decode_video_frames(data, MAX_FRAMES, limits)
        encoding = encoding_signals(video.bits_per_pixel, None, None)
        return visual_features(video.frames, video.selection, encoding, video.successors)
    return None


class _ExtractVisualDoFn(MediaDoFn):
    def __init__(self, limits: MediaLimits):
        self._limits = limits
        self._frames = Metrics.distribution("features", "visual_frames")
        self._cut_short = Metrics.counter("features", "videos_cut_short")

    def process(self, item: MediaFeatures):
        visual = extract_visual(item.data, item.info.media_type, self._limits)
        if visual is not None:
            self._frames.update(visual.frame_count)
            if visual.frame_selection.endswith(CUT_SHORT):
                self._cut_short.inc()
        yield dataclasses.replace(item, visual=visual)


class ExtractVisualFeatures(MediaStep):
    """MediaFeatures -> MediaFeatures with `visual` set; undecodable pictures dead-lettered."""

    DOFN = _ExtractVisualDoFn
    STEP = "extract_visual"
