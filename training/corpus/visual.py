"""Visual media of the corpus: textured scenes with a face-like region, a camera (lens blur,
signal-dependent sensor noise) and the traces of each visual generator family."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from training.corpus.plans import _NORMAL_QUANTILES, _SKIN_TONES, FAMILIES


@dataclass(frozen=True)
class _Face:
    """A face-like sprite: static parts pre-drawn, the mouth drawn per frame."""

    skin: np.ndarray  # base skin colour, linear RGB
    rgb: np.ndarray  # linear RGB, (h, w, 3)
    alpha: np.ndarray  # (h, w)
    mouth_centre: tuple[float, float]
    mouth_width: float
    mouth_max_open: float
    lip_colour: tuple[float, float, float]
    head_axes: tuple[float, float]


@dataclass(frozen=True)
class _Scene:
    canvas: np.ndarray  # linear RGB, larger than the frame by the pan margin
    width: int
    height: int
    pan: np.ndarray  # (frames, 2) canvas offset of the frame's top-left corner
    object_rgb: np.ndarray
    object_alpha: np.ndarray
    object_path: np.ndarray  # (frames, 2) top-left corner
    face: _Face
    face_path: np.ndarray  # (frames, 2) centre of the head
    exposure_drift: np.ndarray  # (frames,) auto-exposure gain
    face_gain: float  # the face is lit like the rest of the scene


@dataclass(frozen=True)
class _Camera:
    lens_sigma: float
    shot_gain: float
    read_sigma: float
    prnu: np.ndarray  # multiplicative fixed pattern, (h, w, 1)
    denoise: float
    sharpen: float
    gamma: float


def _fractal_noise(rng: np.random.Generator, height: int, width: int, beta: float) -> np.ndarray:
    """Zero-mean, unit-std noise with a 1/f^beta power spectrum (periodic, so it tiles)."""
    white = rng.standard_normal((height, width)).astype(np.float32)
    spectrum = np.fft.rfft2(white)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    spectrum *= (radius ** (-beta / 2.0)).astype(np.float32)
    spectrum[0, 0] = 0
    field = np.fft.irfft2(spectrum, s=(height, width)).astype(np.float32)
    return field / (field.std() + 1e-6)


def _texture(rng: np.random.Generator, height: int, width: int, beta: float, regular: bool) -> np.ndarray:
    if not regular:
        return _fractal_noise(rng, height, width, beta)
    # Diffusion-like texture: a small periodic patch tiled, plus a grating: too regular.
    period = int(rng.integers(10, 28))
    patch = _fractal_noise(rng, period, period, beta + 0.8)
    tiled = np.tile(patch, (height // period + 1, width // period + 1))[:height, :width]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    grating = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi / rng.uniform(6, 16))
    regularity = rng.uniform(0.15, 0.7)  # how much of the natural texture survives varies per item
    field = regularity * (tiled + 0.3 * grating) + (1 - regularity) * _fractal_noise(rng, height, width, beta)
    return (field / (field.std() + 1e-6)).astype(np.float32)


def _ellipse_mask(shape: tuple[int, int], centre: tuple[float, float], axes: tuple[float, float],
                  angle: float = 0.0) -> np.ndarray:  # fmt: skip
    """Anti-aliased filled ellipse as float32 coverage in [0, 1]."""
    mask = np.zeros(shape, dtype=np.uint8)
    scale = 16  # cv2 sub-pixel coordinates, 4 fractional bits
    cv2.ellipse(
        mask,
        (round(centre[0] * scale), round(centre[1] * scale)),
        (max(1, round(axes[0] * scale)), max(1, round(axes[1] * scale))),
        angle, 0, 360, 255, -1, cv2.LINE_AA, 4,
    )  # fmt: skip
    return mask.astype(np.float32) / 255.0


def _lerp(base: np.ndarray, colour: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    return base + (colour - base) * coverage[..., None]


def _make_face(rng: np.random.Generator, head_height: float, smooth_skin: bool,
               skin: np.ndarray | None = None) -> _Face:  # fmt: skip
    ay = head_height / 2
    ax = ay * rng.uniform(0.68, 0.8)
    h, w = int(ay * 2.3) + 2, int(ax * 2.4) + 2
    cx, cy = w / 2, h / 2 + ay * 0.05
    if skin is None:
        skin = _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))] * rng.uniform(0.93, 1.07, 3).astype(np.float32)
    hair_colour = np.array(rng.uniform(0.02, 0.25) * rng.uniform(0.7, 1.0, 3), dtype=np.float32)
    has_hair = rng.random() < 0.85
    head = _ellipse_mask((h, w), (cx, cy), (ax, ay))
    hair = _ellipse_mask((h, w), (cx, cy - ay * 0.18), (ax * 1.08, ay * 0.95)) if has_hair else np.zeros_like(head)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light_dx = rng.uniform(-0.4, 0.4)
    radial = ((xx - cx) / ax - light_dx) ** 2 + ((yy - cy) / ay + 0.2) ** 2
    shading = np.clip(1.05 - 0.35 * radial, 0.45, 1.1)
    skin_detail = 0.0 if smooth_skin else rng.uniform(0.03, 0.08)
    texture = _fractal_noise(rng, h, w, 1.2) * skin_detail
    skin_rgb = skin[None, None, :] * (shading * (1 + texture))[..., None]
    rgb = np.broadcast_to(hair_colour, (h, w, 3)).astype(np.float32)
    rgb = _lerp(rgb, skin_rgb, head)
    eye_dx, eye_y = ax * rng.uniform(0.35, 0.45), cy - ay * rng.uniform(0.12, 0.22)
    eye_w, eye_h = ax * rng.uniform(0.16, 0.22), ay * rng.uniform(0.06, 0.09)
    iris = np.array(rng.uniform(0.03, 0.25, 3), dtype=np.float32)
    gaze = rng.uniform(-0.3, 0.3) * eye_w
    for side in (-1, 1):
        ex = cx + side * eye_dx
        rgb = _lerp(rgb, np.array([0.8, 0.78, 0.75], np.float32), _ellipse_mask((h, w), (ex, eye_y), (eye_w, eye_h)))
        rgb = _lerp(rgb, iris, _ellipse_mask((h, w), (ex + gaze, eye_y), (eye_h * 0.9, eye_h * 0.9)))
        brow = _ellipse_mask((h, w), (ex, eye_y - eye_h * 2.6), (eye_w * 1.2, eye_h * 0.45), side * -8.0)
        rgb = _lerp(rgb, hair_colour * 1.2, brow)
    nose = _ellipse_mask((h, w), (cx + light_dx * ax * 0.1, cy + ay * 0.12), (ax * 0.1, ay * 0.07))
    rgb = _lerp(rgb, skin * 0.7, nose * 0.6)
    lip = tuple(float(c) for c in skin * np.array([0.85, 0.55, 0.55], np.float32))
    return _Face(
        skin=skin,
        rgb=rgb.astype(np.float32),
        alpha=np.maximum(head, hair).astype(np.float32),
        mouth_centre=(cx, cy + ay * rng.uniform(0.45, 0.55)),
        mouth_width=ax * rng.uniform(0.32, 0.45),
        mouth_max_open=ay * rng.uniform(0.08, 0.14),
        lip_colour=lip,
        head_axes=(ax, ay),
    )


def _face_sprite(face: _Face, mouth_open: float) -> np.ndarray:
    shape = face.alpha.shape
    lips = _ellipse_mask(shape, face.mouth_centre, (face.mouth_width, face.mouth_max_open * 0.4 + 1.0))
    rgb = _lerp(face.rgb, np.array(face.lip_colour, np.float32), lips)
    if mouth_open > 0.05:
        inner_axes = (face.mouth_width * 0.8, face.mouth_max_open * float(mouth_open))
        rgb = _lerp(rgb, np.array([0.08, 0.03, 0.03], np.float32), _ellipse_mask(shape, face.mouth_centre, inner_axes))
    return rgb


def _paste(frame: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, left: float, top: float) -> None:
    """Alpha-composites a sprite into the frame in place, clipped to the frame."""
    x0, y0 = round(left), round(top)
    h, w = alpha.shape
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + w, frame.shape[1]), min(y0 + h, frame.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sub_alpha = alpha[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0, None]
    region = frame[fy0:fy1, fx0:fx1]
    region += (rgb[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] - region) * sub_alpha


def _smooth_path(rng: np.random.Generator, frames: int, amplitude: float) -> np.ndarray:
    """A smooth random wobble, (frames, 2), for hand-held shake and head sway."""
    t = np.arange(frames, dtype=np.float64)[:, None]
    out = np.zeros((frames, 2))
    for _ in range(3):
        freq = rng.uniform(0.01, 0.12, 2)
        out += np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, 2)) * rng.uniform(0.2, 1.0, 2)
    return out * amplitude / 2.0


def _build_scene(rng: np.random.Generator, width: int, height: int, frames: int, regular_texture: bool) -> _Scene:
    margin = int(0.12 * width) + 4 if frames > 1 else 4
    ch, cw = height + 2 * margin, width + 2 * margin
    beta = rng.uniform(1.6, 2.4)
    coarse = _texture(rng, ch, cw, beta + 0.4, regular_texture)
    fine = _texture(rng, ch, cw, beta - 0.4, regular_texture)
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    yy /= ch
    xx /= cw
    base = np.array(rng.uniform(0.15, 0.7) * rng.uniform(0.6, 1.0, 3), np.float32)
    canvas = base[None, None, :] * (1 + 0.25 * coarse + 0.08 * fine)[..., None]
    for _ in range(int(rng.integers(3, 7))):
        colour = np.array(rng.uniform(0.05, 0.9) * rng.uniform(0.4, 1.0, 3), np.float32)
        centre = (rng.uniform(0, cw), rng.uniform(0, ch))
        size = rng.uniform(0.1, 0.45) * min(cw, ch)
        kind = rng.integers(3)
        if kind == 0:
            mask = _ellipse_mask((ch, cw), centre, (size, size * rng.uniform(0.4, 1.0)), rng.uniform(0, 180))
        else:
            sides = 4 if kind == 1 else int(rng.integers(3, 7))
            angles = (
                np.sort(rng.uniform(0, 2 * np.pi, sides))
                if kind == 2
                else np.arange(4) * np.pi / 2 + rng.uniform(0, np.pi)
            )
            radii = size * (rng.uniform(0.6, 1.0, sides) if kind == 2 else np.ones(sides))
            points = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], 1)
            mask_u8 = np.zeros((ch, cw), np.uint8)
            cv2.fillPoly(mask_u8, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
            mask = mask_u8.astype(np.float32) / 255.0
        shift = tuple(int(s) for s in rng.integers(0, 64, 2))
        detail = rng.uniform(0.1, 0.4) * np.roll(coarse, shift, (0, 1)) + rng.uniform(0.0, 0.15) * np.roll(
            fine, shift, (1, 0)
        )
        shade = 1 + rng.uniform(-0.3, 0.3) * (xx - 0.5) + rng.uniform(-0.3, 0.3) * (yy - 0.5)
        canvas = _lerp(canvas, colour[None, None, :] * ((1 + detail) * shade)[..., None], mask)
    illumination = 1 + rng.uniform(-0.5, 0.5) * (xx - 0.5) + rng.uniform(-0.5, 0.5) * (yy - 0.5)
    spot = np.exp(-(((xx - rng.uniform(0, 1)) ** 2 + (yy - rng.uniform(0, 1)) ** 2) / rng.uniform(0.05, 0.3)))
    exposure = rng.uniform(0.45, 1.0)
    canvas = np.clip(canvas * (illumination + rng.uniform(0, 0.5) * spot)[..., None] * exposure, 0, 1).astype(
        np.float32
    )

    start = rng.uniform(0, 2 * margin, 2)
    end = rng.uniform(0, 2 * margin, 2) if rng.random() < 0.6 else start
    t = np.linspace(0, 1, frames)[:, None]
    pan = start + (end - start) * t + _smooth_path(rng, frames, rng.uniform(0, 2.0))
    pan = np.clip(pan, 0, 2 * margin)

    obj_size = int(rng.uniform(0.1, 0.25) * height) + 4
    obj_rgb = (
        np.array(rng.uniform(0.1, 0.9, 3), np.float32)[None, None, :]
        * (1 + 0.2 * _fractal_noise(rng, obj_size, obj_size, 2.0))[..., None]
    )
    obj_alpha = _ellipse_mask((obj_size, obj_size), (obj_size / 2, obj_size / 2), (obj_size / 2 - 1, obj_size / 2.4))
    obj_start = np.array([rng.uniform(-obj_size, width), rng.uniform(0, height - obj_size)])
    obj_velocity = rng.uniform(-3, 3, 2) * (width / 200)
    object_path = obj_start + obj_velocity * np.arange(frames)[:, None]

    face = _make_face(rng, rng.uniform(0.38, 0.62) * height, smooth_skin=regular_texture)
    face_centre = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.4, 0.6) * height])
    face_path = face_centre + _smooth_path(rng, frames, rng.uniform(0.5, 0.04 * width))
    exposure_drift = 1 + 0.03 * _smooth_path(rng, frames, 1.0)[:, 0] * rng.random()
    return _Scene(canvas, width, height, pan, obj_rgb.astype(np.float32), obj_alpha, object_path,
                  face, face_path, exposure_drift, float(canvas.mean() * 2.2 + 0.2))  # fmt: skip


def _render_clean(scene: _Scene, index: int, face_rgb: np.ndarray) -> np.ndarray:
    """The scene as light reaching the lens at one frame: linear RGB, no blur or noise."""
    ox, oy = scene.pan[index]
    shift = np.float32([[1, 0, -ox], [0, 1, -oy]])
    frame = cv2.warpAffine(scene.canvas, shift, (scene.width, scene.height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)  # fmt: skip
    _paste(frame, scene.object_rgb, scene.object_alpha, *scene.object_path[index])
    h, w = scene.face.alpha.shape
    cx, cy = scene.face_path[index]
    _paste(frame, face_rgb * np.float32(scene.face_gain), scene.face.alpha, cx - w / 2, cy - h / 2)
    return frame * np.float32(scene.exposure_drift[index])


def _make_camera(rng: np.random.Generator, width: int, height: int) -> _Camera:
    return _Camera(
        lens_sigma=rng.uniform(0.4, 1.1),
        shot_gain=math.exp(rng.uniform(math.log(3e-4), math.log(6e-3))),
        read_sigma=rng.uniform(1e-3, 6e-3),
        prnu=(1 + rng.uniform(0.002, 0.012) * rng.standard_normal((height, width, 1))).astype(np.float32),
        denoise=rng.uniform(0.5, 1.0) if rng.random() < 0.35 else 0.0,  # phone ISPs denoise hard
        sharpen=rng.uniform(0.0, 0.6),
        gamma=rng.uniform(2.0, 2.4),
    )


def _fast_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard-normal float32 noise via a quantile table (frame noise dominates run time)."""
    return np.take(_NORMAL_QUANTILES, rng.integers(0, 65536, size=shape, dtype=np.uint16))


def _to_display(linear: np.ndarray, gamma: float) -> np.ndarray:
    return cv2.pow(np.clip(linear, 0, 1, dtype=np.float32), 1.0 / gamma)


def _capture(clean: np.ndarray, camera: _Camera, rng: np.random.Generator) -> np.ndarray:
    """A camera capture: lens blur, PRNU, signal-dependent shot + read noise, ISP, gamma."""
    image = cv2.GaussianBlur(clean, (0, 0), camera.lens_sigma) * camera.prnu
    noise_sd = cv2.sqrt(np.float32(camera.shot_gain) * np.maximum(image, 0) + np.float32(camera.read_sigma**2))
    image = image + noise_sd * _fast_normal(rng, image.shape)
    display = _to_display(image, camera.gamma)
    if camera.denoise:
        smoothed = cv2.bilateralFilter(display, 5, 0.08, 2.0)
        display = display + (smoothed - display) * np.float32(camera.denoise)
    if camera.sharpen:
        display = display + np.float32(camera.sharpen) * (display - cv2.GaussianBlur(display, (0, 0), 1.0))
    return display


def _checkerboard_kernel(rng: np.random.Generator, strength: float) -> np.ndarray:
    """A 4x4 transposed-convolution kernel whose four stride phases have unequal gains."""
    bilinear = np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25])
    kernel = bilinear + rng.normal(0, strength * 0.15, (4, 4))
    phase_gains = 1 + rng.normal(0, strength, (2, 2))
    phase_gains *= 4 / phase_gains.sum()  # keep the mean brightness
    for py in range(2):
        for px in range(2):
            part = kernel[py::2, px::2]
            kernel[py::2, px::2] = part * (phase_gains[py, px] / part.sum())
    return kernel.astype(np.float32)


def _upsample_2x(image: np.ndarray, kernel: np.ndarray | None) -> np.ndarray:
    h, w = image.shape[:2]
    if kernel is None:  # nearest neighbour
        return np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    zeros = np.zeros((2 * h, 2 * w, image.shape[2]), np.float32)
    zeros[::2, ::2] = image
    return cv2.filter2D(zeros, -1, kernel, anchor=(1, 1), borderType=cv2.BORDER_REFLECT)


@dataclass(frozen=True)
class _VisualStyle:
    """Per-item parameters of a visual generator family (strength varies per item)."""

    family: str | None
    factor: int = 2
    kernels: tuple[np.ndarray | None, ...] = ()
    post_blur: float = 0.0
    smooth_sigma_colour: float = 0.0
    saturation: float = 1.0
    flicker: float = 0.0
    sharpen: float = 0.0  # an upscaler's unsharp mask: edges regain contrast, texture stays flat
    swap_face: _Face | None = None
    swap_tint: np.ndarray | None = None
    swap_scale: float = 1.0
    swap_noise: float = 0.0
    swap_feather: float = 3.0
    swap_jitter: float = 0.0
    gamma: float = 2.2


def _make_style(rng: np.random.Generator, family: str | None, scene: _Scene) -> _VisualStyle:
    gamma = rng.uniform(2.0, 2.4)
    if family == "upsample":
        factor = 2 if rng.random() < 0.8 else 4
        stages = int(math.log2(factor))
        nearest = factor == 2 and rng.random() < 0.25
        strength = math.exp(rng.uniform(math.log(0.02), math.log(0.08)))
        kernels = tuple(None if nearest else _checkerboard_kernel(rng, strength) for _ in range(stages))
        return _VisualStyle(family, factor=factor, kernels=kernels, post_blur=rng.uniform(0, 0.5) if nearest else 0.0,
                            gamma=gamma)  # fmt: skip
    if family == "diffusion":
        return _VisualStyle(family, post_blur=rng.uniform(0.3, 1.2), smooth_sigma_colour=rng.uniform(0.03, 0.15),
                            saturation=rng.uniform(1.0, 1.2), flicker=rng.uniform(0.0, 0.01), gamma=gamma,
                            sharpen=rng.uniform(0.3, 0.8) if rng.random() < 0.3 else 0.0)  # fmt: skip
    if family == "blend":
        head_height = scene.face.head_axes[1] * 2
        # Most swaps are colour-matched to the target; some keep the source's own skin tone.
        skin = scene.face.skin if rng.random() < 0.75 else None
        return _VisualStyle(
            family,
            swap_face=_make_face(rng, head_height, smooth_skin=rng.random() < 0.5, skin=skin),
            swap_tint=(1 + rng.normal(0, rng.uniform(0.005, 0.05), 3)).astype(np.float32),
            swap_scale=rng.uniform(0.4, 0.9) if rng.random() < 0.7 else 1.0,
            swap_noise=rng.uniform(0, 0.01) if rng.random() < 0.4 else 0.0,
            swap_feather=rng.uniform(1.0, 5.0),
            swap_jitter=rng.uniform(0.0, 1.0),
            gamma=gamma,
        )
    return _VisualStyle(None, gamma=gamma)


def _blend_face(display: np.ndarray, scene: _Scene, index: int, face_rgb: np.ndarray, style: _VisualStyle,
                rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Face swap: a different face, with its own tone, sharpness and noise, feathered in."""
    face = style.swap_face
    assert face is not None and style.swap_tint is not None
    gain = scene.face_gain * float(scene.exposure_drift[index])
    source = face_rgb * np.float32(gain) * style.swap_tint
    h, w = face.alpha.shape
    if style.swap_scale < 1.0:
        small = cv2.resize(source, (max(2, int(w * style.swap_scale)), max(2, int(h * style.swap_scale))),
                           interpolation=cv2.INTER_AREA)  # fmt: skip
        source = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    source = _to_display(source, style.gamma)
    if style.swap_noise:
        source = source + np.float32(style.swap_noise) * _fast_normal(rng, source.shape)
    ax, ay = face.head_axes
    inner = _ellipse_mask((h, w), (w / 2, h / 2 + ay * 0.1), (ax * 0.82, ay * 0.8))
    mask = cv2.GaussianBlur(inner, (0, 0), style.swap_feather)
    cx, cy = scene.face_path[index] + rng.normal(0, style.swap_jitter, 2)
    _paste(display, source, mask, cx - w / 2, cy - h / 2)
    return display


def _render_frames(
    rng: np.random.Generator,
    family: str | None,
    size: tuple[int, int],
    out_size: tuple[int, int],
    frames: int,
    mouth: np.ndarray,
) -> Iterator[np.ndarray]:
    """Yields uint8 RGB frames of a real capture or of one synthetic visual family.

    Args:
        rng: the item's visual random stream.
        family: None for a camera capture, else a visual family name.
        size: (width, height) the content is made at.
        out_size: (width, height) after the platform rescale.
        frames: number of frames (1 for a still).
        mouth: mouth openness per frame in [0, 1].
    """
    width, height = size
    scene = _build_scene(rng, width, height, frames, regular_texture=family == "diffusion")
    style = _make_style(rng, family, scene)
    camera = _make_camera(rng, width, height)
    grain = rng.uniform(0.002, 0.01) if rng.random() < (0.3 if family else 0.15) else 0.0
    interpolation = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)[int(rng.integers(3))]
    sprites: dict[tuple[bool, int], np.ndarray] = {}

    def face_rgb(swapped: bool, index: int) -> np.ndarray:
        # Mouth openness in 1/16 steps: sprites are reused across frames, not redrawn.
        key = (swapped, round(float(mouth[index]) * 16))
        if key not in sprites:
            face = style.swap_face if swapped else scene.face
            assert face is not None
            sprites[key] = _face_sprite(face, key[1] / 16)
        return sprites[key]

    for index in range(frames):
        clean = _render_clean(scene, index, face_rgb(False, index))
        if family is None or family == "blend":
            display = _capture(clean, camera, rng)
            if family == "blend":
                display = _blend_face(display, scene, index, face_rgb(True, index), style, rng)
        elif family == "upsample":
            f = style.factor
            low = cv2.resize(clean, (-(-width // f), -(-height // f)), interpolation=cv2.INTER_AREA)
            low = cv2.copyMakeBorder(low, 2, 2, 2, 2, cv2.BORDER_REPLICATE)  # no dark seams at the edges
            for kernel in style.kernels:
                low = _upsample_2x(low, kernel)
            up = low[2 * f : 2 * f + height, 2 * f : 2 * f + width]
            if style.post_blur:
                up = cv2.GaussianBlur(up, (0, 0), style.post_blur)
            display = _to_display(up, style.gamma)
        else:  # diffusion
            smooth = cv2.bilateralFilter(clean, 5, style.smooth_sigma_colour, 3.0)
            smooth = cv2.GaussianBlur(smooth, (0, 0), style.post_blur)
            if style.flicker:
                smooth = smooth * (1 + rng.normal(0, style.flicker, 3)).astype(np.float32)
            display = _to_display(smooth, style.gamma)
            if style.saturation != 1.0:
                grey = display.mean(axis=2, keepdims=True)
                display = grey + (display - grey) * np.float32(style.saturation)
            if style.sharpen:
                display = display + np.float32(style.sharpen) * (display - cv2.GaussianBlur(display, (0, 0), 1.0))
        if out_size != size:
            display = cv2.resize(display, out_size, interpolation=interpolation)
        if grain:
            display = display + np.float32(grain) * _fast_normal(rng, display.shape)
        yield cv2.convertScaleAbs(np.maximum(display, 0), alpha=255.0)  # rounds and saturates


def render_image(seed: int, visual_family: str | None, width: int = 192, height: int = 192) -> np.ndarray:
    """Renders one still (uint8 RGB, before any container encoding) for tests and diagnostics.

    Args:
        seed: random seed; the same seed and arguments give the same pixels.
        visual_family: None for a real-looking capture, else a name from FAMILIES["visual"].
        width: width in pixels.
        height: height in pixels.
    """
    if visual_family is not None and visual_family not in FAMILIES["visual"]:
        raise ValueError(f"unknown visual family {visual_family!r}")
    rng = np.random.default_rng([seed, 99])
    return next(_render_frames(rng, visual_family, (width, height), (width, height), 1, np.zeros(1)))
