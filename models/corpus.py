"""Deterministic generator of a labelled corpus of real-looking and synthetic media.

The corpus is made procedurally (nothing is downloaded) so detectors can be trained and tested
on a problem with a known answer:

* "real" items imitate camera captures: textured scenes with a face-like region, motion, lens
  blur and signal-dependent sensor noise; speech-like audio from a jittery glottal source
  through moving formants, a room and background noise; some music and ambience.
* "synthetic" items carry the traces of one generator family per modality (`FAMILIES`), with a
  strength drawn per item, so a family can be held out to test generalisation.
* Platform degradations (rescale, grain, recompression, codec choice) hit both classes alike,
  and metadata tells (EXIF, XMP, tags, resolution, account age) are only probabilistic.
  Recompression stays within what platforms ship (H.264 CRF 18-30, VP9 CRF 24-40, JPEG
  quality 65-96, AAC from 48 kbit/s, Opus from 24 kbit/s): harsher settings erase the traces
  outright, and an item whose evidence is gone teaches nothing and measures nothing.

Output in ``out_dir``: ``media/<content_id>.<ext>``, ``manifest.jsonl`` (upload events, as the
pipeline sees them) and ``labels.jsonl`` (ground truth, kept apart). Every item draws from its
own random stream, ``default_rng([seed, 0, index, purpose])``, so an item does not depend on
the others, on generation order or on how many processes make the media (``--workers``).

Usage: ``python -m models.corpus --out DIR --count N [--seed S] [--corrupt K] [--workers W]``
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from scipy import fft, signal, special

from schemas.vocabulary import MEDIA_TYPES

FAMILIES: dict[str, tuple[str, ...]] = {
    # Generator-like upsampling (checkerboard / spectral peaks), face swap with a blending
    # boundary, and over-smooth diffusion-like images with a high-frequency deficit.
    "visual": ("upsample", "blend", "diffusion"),
    # Griffin-Lim magnitude-only resynthesis, neural-vocoder band limit with tonal/imaging
    # artifacts, and too-regular TTS prosody with a perfectly periodic, dry source.
    "audio": ("vocoder", "bandlimit", "tts"),
    # Generator toolchain tags and resolutions, forged camera EXIF, and declared AI.
    "metadata": ("toolchain", "spoofed", "declared"),
}

LABELS = ("real", "synthetic", "corrupt")

# Random-stream namespaces: [seed, namespace, index, purpose].
_ITEM_STREAM, _ACCOUNT_STREAM, _CORRUPT_STREAM = 0, 1, 2
_PLAN, _UPLOAD, _VISUAL, _AUDIO, _META, _ENCODE, _NOTICE, _ABSENCE, _STRIP = range(9)
# Share of uploads someone reports before the pipeline runs, (user report, trusted flagger):
# people spot some fakes, and report some real media too.
_NOTICE_RATES = {True: (0.10, 0.04), False: (0.03, 0.005)}

_WINDOW_START = datetime(2026, 10, 1, tzinfo=UTC)
_WINDOW_DAYS = 30
_ACCOUNT_POOL_SIZE = 400

_MEDIA_TYPE_WEIGHTS = (0.45, 0.30, 0.25)
_SYNTHETIC_SHARE = 0.5
# Which modality a synthetic video fakes: face swap only, voice clone only, or both.
_VIDEO_FAKE_MODES = (("visual", 0.40), ("audio", 0.25), ("both", 0.35))
# With the plain share below, about 15% of synthetic items end up declaring AI.
_METADATA_FAMILY_WEIGHTS = {"toolchain": 0.56, "spoofed": 0.28, "declared": 0.16}
# Share of synthetic items whose metadata looks like any real upload's (metadata_label 0).
_SYNTHETIC_PLAIN_METADATA = 0.2
# Share of uploads, real and synthetic alike, whose file reaches the platform with its metadata
# stripped (a forward from a messenger, a re-upload, a screen recording): no camera, software,
# capture time, location or provenance left, whatever the item is. The same share for both
# classes, so a bare file says nothing about the label by itself.
PLATFORM_STRIPPED_SHARE = 0.25
# Optional upload-event fields left out, for real and synthetic items alike (drawn from their own
# random stream, so no media byte changes). Real traffic arrives through ingestion paths that
# do not all join the same context: API and cross-posting uploads, backfills and messaging
# bridges send only the four required fields, some paths never ask the AI-disclosure question,
# and an account service time-out leaves single account fields out. A quarter of events carry
# no optional field at all (traffic tried on the shipped models had half), and every other
# field is missing from at least a tenth of the rest, so each absence is seen thousands of
# times in a 12000-item corpus, with both labels: absent is a value the models learn, not a
# region they never saw.
ABSENT_SHARES = {
    "all_optional": 0.25,
    "account": 0.20,
    "account.created_at": 0.10,
    "account.verified": 0.15,
    "account.high_profile": 0.15,
    "account.prior_strikes": 0.15,
    "declared_ai": 0.35,
    "media_type": 0.20,
    "surface": 0.10,
    "country": 0.15,
}

_CONTAINERS: dict[str, tuple[tuple[str, float, float], ...]] = {
    # (container, weight when real, weight when synthetic): overlapping, never decisive.
    "video": (("mp4", 0.8, 0.8), ("webm", 0.2, 0.2)),
    "image": (("jpeg", 0.5, 0.4), ("png", 0.15, 0.25), ("webp", 0.2, 0.2), ("gif", 0.15, 0.15)),
    "audio": (("wav", 0.2, 0.2), ("mp3", 0.25, 0.25), ("flac", 0.15, 0.15), ("ogg", 0.2, 0.2), ("m4a", 0.2, 0.2)),
}
_EXTENSIONS = {
    "mp4": "mp4", "webm": "webm", "jpeg": "jpg", "png": "png", "webp": "webp", "gif": "gif",
    "wav": "wav", "mp3": "mp3", "flac": "flac", "ogg": "ogg", "m4a": "m4a",
}  # fmt: skip

_SURFACES: dict[str, tuple[tuple[str, float, float], ...]] = {
    # (surface, weight when real, weight when synthetic)
    "video": (("feed", .35, .33), ("stories", .25, .22), ("live", .10, .07), ("messaging", .20, .20), ("ads", .10, .18)),
    "image": (("feed", .45, .42), ("stories", .20, .18), ("messaging", .25, .24), ("ads", .10, .16)),
    "audio": (("messaging", .55, .52), ("feed", .25, .25), ("live", .15, .13), ("ads", .05, .10)),
}  # fmt: skip
_COUNTRIES = ("US", "IN", "BR", "GB", "DE", "NG", "ID", "MX", "FR", "JP")
_COUNTRY_WEIGHTS = (0.25, 0.2, 0.12, 0.08, 0.07, 0.07, 0.08, 0.06, 0.04, 0.03)
_COUNTRY_CENTRES = {
    "US": (39.8, -98.6), "IN": (22.3, 79.0), "BR": (-14.2, -51.9), "GB": (52.4, -1.5), "DE": (51.2, 10.4),
    "NG": (9.1, 8.7), "ID": (-2.5, 118.0), "MX": (23.6, -102.6), "FR": (46.6, 2.2), "JP": (36.2, 138.3),
}  # fmt: skip

_CAMERAS = (
    ("Apple", "iPhone 13", "16.6.1"), ("Apple", "iPhone 14 Pro", "17.1.2"), ("Apple", "iPhone 15", "17.4"),
    ("samsung", "SM-S911B", "S911BXXS3BWK5"), ("samsung", "SM-A546E", "A546EXXU4BWK1"),
    ("Google", "Pixel 7", "HDR+ 1.0.540104767zd"), ("Google", "Pixel 8 Pro", "HDR+ 1.0.585235393zd"),
    ("Xiaomi", "2201117TG", "MIUI 14.0.4"), ("OnePlus", "CPH2449", "CPH2449_14.0.0.201"),
    ("Canon", "Canon EOS 90D", "Firmware Version 1.1.0"), ("SONY", "ILCE-7M3", "ILCE-7M3 v4.01"),
    ("NIKON CORPORATION", "NIKON Z 6_2", "Ver.1.40"), ("FUJIFILM", "X-T4", "Digital Camera X-T4 Ver2.01"),
)  # fmt: skip
# Software/encoder strings; the two lists overlap on purpose (editors serve both worlds).
_REAL_IMAGE_SOFTWARE = (
    "Adobe Photoshop Lightroom Classic 13.0",
    "Snapseed 2.0",
    "GIMP 2.10.36",
    "Instagram",
    "Picasa",
    "Adobe Photoshop 25.0 (Windows)",
    "Canva",
)
_SYNTH_IMAGE_SOFTWARE = (
    "diffusers 0.27.2",
    "ComfyUI",
    "stable-diffusion-webui",
    "Python PIL",
    "imageio",
    "OpenCV 4.9.0",
    "Adobe Photoshop 25.0 (Windows)",
    "GIMP 2.10.36",
    "Canva",
)
_REAL_AV_SOFTWARE = ("CapCut", "InShot 2.0", "Lavf60.16.100", "Voice Memos", "Recorder 3.2", "Audacity 3.4.2",
                     "WhatsApp", "HandBrake 1.7.2")  # fmt: skip
_SYNTH_AV_SOFTWARE = ("Lavf58.76.100", "CapCut", "imageio-ffmpeg", "OpenCV 4.9.0", "moviepy 1.0.3",
                      "ComfyUI VideoHelperSuite", "torchaudio 2.2", "Coqui TTS 0.22", "Audacity 3.4.2")  # fmt: skip
_IPTC_PREFIX = "http://cv.iptc.org/newscodes/digitalsourcetype/"

# Vowel formant targets F1-F3 (Hz) and how open the mouth is for each.
_VOWEL_FORMANTS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410], [660, 1720, 2410]],
    dtype=np.float64,
)
_VOWEL_OPENNESS = np.array([1.0, 0.25, 0.3, 0.6, 0.7, 0.85])
_CONTROL_RATE = 200  # speech parameter tracks, per second
_SKIN_TONES = np.array(
    [[0.80, 0.58, 0.47], [0.68, 0.47, 0.36], [0.52, 0.35, 0.24], [0.36, 0.24, 0.16], [0.86, 0.70, 0.60]],
    dtype=np.float32,
)
# Standard-normal quantiles for 16-bit uniform indices: Gaussian noise for video frames at a
# fifth of the cost of Generator.standard_normal (tails clip at 4.3 sigma, irrelevant here).
_NORMAL_QUANTILES = special.ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)
_NORMAL_QUANTILES.flags.writeable = False
_CORRUPT_KINDS = ("truncated_mp4", "random_bytes_jpg", "empty_wav", "bad_header_wav", "truncated_webm")


# ----------------------------------------------------------------------------------------------
# Plans: what each item is, decided before any pixel or sample is made.


@dataclass(frozen=True)
class Account:
    """An uploading account; attributes are fixed per account so repeat uploads agree."""

    account_id: str
    created_at: datetime
    verified: bool
    high_profile: bool
    prior_strikes: int
    home_country: str


@dataclass(frozen=True)
class ItemPlan:
    """The ground truth of one item: media type, container and generator family per modality."""

    index: int
    content_id: str
    media_type: str
    container: str
    visual_family: str | None
    audio_family: str | None
    metadata_family: str | None
    corrupt_kind: str | None = None
    stripped: bool = False  # the platform received the file with its metadata stripped

    @property
    def synthetic(self) -> bool:
        return self.visual_family is not None or self.audio_family is not None

    @property
    def label(self) -> str:
        if self.corrupt_kind:
            return "corrupt"
        return "synthetic" if self.synthetic else "real"


@dataclass(frozen=True)
class MetadataPlan:
    """Provenance-like metadata written into one file."""

    camera: tuple[str, str] | None  # (Make, Model)
    software: str | None
    capture_time: datetime | None  # DateTimeOriginal / creation_time
    location: str | None  # ISO 6709
    source_type: str | None  # IPTC digital source type code
    declared_ai: bool
    generator_shape: bool  # generator-typical resolution / frame rate / clip length


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _weighted_choice(rng: np.random.Generator, options: Iterable[tuple[str, float]]) -> str:
    names, weights = zip(*options)
    weights_array = np.asarray(weights, dtype=np.float64)
    return names[int(rng.choice(len(names), p=weights_array / weights_array.sum()))]


def _pick(names: tuple[str, ...], u: float) -> str | None:
    """Maps a uniform draw onto the allowed names, so restricting families reuses the draw."""
    return names[min(int(u * len(names)), len(names) - 1)] if names else None


def _allowed_families(families: Mapping[str, Iterable[str]] | Iterable[str] | None) -> dict[str, tuple[str, ...]]:
    if families is None:
        return dict(FAMILIES)
    known = {name for names in FAMILIES.values() for name in names}
    if isinstance(families, Mapping):
        unknown_modalities = set(families) - set(FAMILIES)
        if unknown_modalities:
            raise ValueError(f"unknown modalities {sorted(unknown_modalities)}; expected {sorted(FAMILIES)}")
        allowed = {}
        for modality, names in FAMILIES.items():
            requested = families.get(modality, names)
            requested = {requested} if isinstance(requested, str) else set(requested)
            if requested - set(names):
                raise ValueError(f"unknown {modality} families {sorted(requested - set(names))}; expected {names}")
            allowed[modality] = tuple(name for name in names if name in requested)
        return allowed
    requested = {families} if isinstance(families, str) else set(families)
    if requested - known:
        raise ValueError(f"unknown families {sorted(requested - known)}; expected some of {sorted(known)}")
    return {modality: tuple(n for n in names if n in requested) for modality, names in FAMILIES.items()}


def _plan_item(seed: int, index: int, allowed: Mapping[str, tuple[str, ...]]) -> ItemPlan:
    rng = _rng(seed, _ITEM_STREAM, index, _PLAN)
    media_type = MEDIA_TYPES[int(rng.choice(3, p=_MEDIA_TYPE_WEIGHTS))]
    wants_synthetic = rng.random() < _SYNTHETIC_SHARE
    video_mode = _weighted_choice(rng, _VIDEO_FAKE_MODES)
    # Draw every uniform whatever the outcome, so the stream stays aligned across restrictions.
    u_visual, u_audio, u_metadata, u_plain = rng.random(4)
    visual_family = audio_family = None
    if wants_synthetic:
        fake_visual = media_type == "image" or (media_type == "video" and video_mode in ("visual", "both"))
        fake_audio = media_type == "audio" or (media_type == "video" and video_mode in ("audio", "both"))
        visual_family = _pick(allowed["visual"], u_visual) if fake_visual else None
        audio_family = _pick(allowed["audio"], u_audio) if fake_audio else None
        if media_type == "video" and visual_family is None and audio_family is None:
            # The wanted modality is excluded; fake the other one rather than lose the item.
            visual_family = _pick(allowed["visual"], u_visual)
            audio_family = None if visual_family else _pick(allowed["audio"], u_audio)
    metadata_family = None
    if (visual_family or audio_family) and u_plain >= _SYNTHETIC_PLAIN_METADATA and allowed["metadata"]:
        names = allowed["metadata"]
        weights = np.array([_METADATA_FAMILY_WEIGHTS[n] for n in names])
        cumulative = np.cumsum(weights / weights.sum())
        metadata_family = names[min(int(np.searchsorted(cumulative, u_metadata, side="right")), len(names) - 1)]
    synthetic = bool(visual_family or audio_family)
    container = _weighted_choice(rng, ((c, ws if synthetic else wr) for c, wr, ws in _CONTAINERS[media_type]))
    # Its own stream, so stripping changed no earlier draw. A stripped file carries no family's
    # metadata tells (its metadata label is 0), whichever class it is.
    stripped = bool(_rng(seed, _ITEM_STREAM, index, _STRIP).random() < PLATFORM_STRIPPED_SHARE)
    if stripped:
        metadata_family = None
    return ItemPlan(
        index, f"c{index:06d}", media_type, container, visual_family, audio_family, metadata_family, stripped=stripped
    )


def _account_pool(seed: int) -> list[Account]:
    accounts = []
    for k in range(_ACCOUNT_POOL_SIZE):
        rng = _rng(seed, _ACCOUNT_STREAM, k)
        age_days = math.exp(rng.uniform(math.log(1.0), math.log(3650.0)))
        high_profile = rng.random() < 0.03
        accounts.append(
            Account(
                account_id=f"a{int(rng.integers(10**6, 10**7)):07d}{k:03d}",
                created_at=(_WINDOW_START + timedelta(days=20) - timedelta(days=age_days)).replace(microsecond=0),
                verified=bool(rng.random() < (0.85 if high_profile else 0.08)),
                high_profile=bool(high_profile),
                prior_strikes=int(rng.poisson(0.15) + (rng.random() < 0.05) * rng.integers(1, 4)),
                home_country=_COUNTRIES[int(rng.choice(len(_COUNTRIES), p=_COUNTRY_WEIGHTS))],
            )
        )
    return accounts


def _account_weights(accounts: list[Account]) -> tuple[np.ndarray, np.ndarray]:
    """Choice weights for real and synthetic uploads: synthetic ones lean to new accounts."""
    popularity = 1.0 / (np.arange(len(accounts)) + 3.0) ** 0.7
    reference = _WINDOW_START + timedelta(days=20)
    age_days = np.array([(reference - a.created_at).total_seconds() / 86400 for a in accounts])
    strikes = np.array([a.prior_strikes for a in accounts])
    synthetic = popularity * (1.0 + 1.5 * np.exp(-age_days / 60.0)) * (1.0 + 0.3 * strikes)
    return popularity / popularity.sum(), synthetic / synthetic.sum()


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plan_upload(
    seed: int, plan: ItemPlan, accounts: list[Account], weights: tuple[np.ndarray, np.ndarray]
) -> tuple[Account, datetime, str, str]:
    rng = _rng(seed, _ITEM_STREAM if plan.corrupt_kind is None else _CORRUPT_STREAM, plan.index, _UPLOAD)
    account = accounts[int(rng.choice(len(accounts), p=weights[1] if plan.synthetic else weights[0]))]
    start = max(_WINDOW_START, account.created_at + timedelta(hours=1))
    end = _WINDOW_START + timedelta(days=_WINDOW_DAYS)
    uploaded_at = (start + (end - start) * float(rng.random())).replace(microsecond=0)
    surfaces = ((s, ws if plan.synthetic else wr) for s, wr, ws in _SURFACES[plan.media_type])
    surface = _weighted_choice(rng, surfaces)
    country = account.home_country
    if rng.random() < 0.1:  # travelling or using a VPN
        country = _COUNTRIES[int(rng.choice(len(_COUNTRIES), p=_COUNTRY_WEIGHTS))]
    return account, uploaded_at, surface, country


def _plan_notice(seed: int, plan: ItemPlan, uploaded_at: datetime) -> dict[str, str] | None:
    """A user report or trusted-flagger notice for some uploads (its own random stream, so
    adding notices changed no media)."""
    rng = _rng(seed, _ITEM_STREAM if plan.corrupt_kind is None else _CORRUPT_STREAM, plan.index, _NOTICE)
    user, flagger = _NOTICE_RATES[plan.synthetic]
    u = rng.random()
    if u >= user + flagger:
        return None
    received = uploaded_at + timedelta(hours=float(rng.uniform(0.2, 48.0)))
    return {
        "source": "user_report" if u < user else "trusted_flagger",
        "received_at": _rfc3339(received.replace(microsecond=0)),
    }


def _iso6709(rng: np.random.Generator, country: str) -> str:
    lat, lon = _COUNTRY_CENTRES[country]
    return f"{lat + rng.normal(0, 2):+08.4f}{lon + rng.normal(0, 3):+09.4f}/"


def _plan_metadata(seed: int, plan: ItemPlan, uploaded_at: datetime, country: str) -> MetadataPlan:
    """Probabilistic provenance: every tell also occurs, less often, on the other class."""
    rng = _rng(seed, _ITEM_STREAM, plan.index, _META)
    family = plan.metadata_family
    camera_entry = _CAMERAS[int(rng.integers(len(_CAMERAS)))]
    before_upload = uploaded_at - timedelta(seconds=float(rng.exponential(86400 * 5)) + 30)
    u = rng.random(8)
    camera = software = capture_time = location = source_type = None
    generator_shape = False
    declared = False
    if plan.stripped:
        # Nothing about the file's origin survives; only its shape (size, rate, length) does.
        generator_shape = u[6] < 0.08
        declared = u[7] < (0.03 if plan.synthetic else 0.015)
    elif family is None:
        # Real uploads, and synthetic ones laundered into ordinary-looking files.
        stripped = plan.synthetic or u[0] < 0.45  # platforms and messengers strip EXIF often
        if not stripped or (plan.synthetic and u[0] < 0.15):
            camera = camera_entry[:2]
            editors = _REAL_IMAGE_SOFTWARE if plan.media_type == "image" else _REAL_AV_SOFTWARE
            software = camera_entry[2] if u[1] < 0.7 else editors[int(rng.integers(len(editors)))]
            capture_time = before_upload
            if u[2] < 0.03:  # a camera whose clock was never set
                capture_time = datetime(2000, 1, 1, tzinfo=UTC) + (before_upload - _WINDOW_START)
        elif u[1] < 0.25:
            pool = _REAL_IMAGE_SOFTWARE if plan.media_type == "image" else _REAL_AV_SOFTWARE
            software = pool[int(rng.integers(len(pool)))]
        if plan.media_type != "image" and u[3] < 0.5:
            capture_time = capture_time or before_upload
        location = _iso6709(rng, country) if camera and u[4] < 0.35 else None
        if u[5] < 0.06:
            source_type = "digitalCapture"
        elif u[5] < 0.08:
            source_type = "compositeWithTrainedAlgorithmicMedia"  # a real photo with an AI edit
        generator_shape = u[6] < 0.08
        declared = u[7] < (0.03 if plan.synthetic else 0.015)
    elif family == "toolchain":
        pool = _SYNTH_IMAGE_SOFTWARE if plan.media_type == "image" else _SYNTH_AV_SOFTWARE
        software = pool[int(rng.integers(len(pool)))] if u[0] < 0.75 else None
        camera = camera_entry[:2] if u[1] < 0.05 else None
        capture_time = uploaded_at - timedelta(seconds=float(rng.exponential(3600))) if u[2] < 0.3 else None
        generator_shape = u[3] < 0.65
        declared = u[4] < 0.03
    elif family == "spoofed":
        # A forged camera identity whose details do not hang together.
        camera = camera_entry[:2] if u[0] < 0.9 else None
        pool = _SYNTH_IMAGE_SOFTWARE if plan.media_type == "image" else _SYNTH_AV_SOFTWARE
        software = pool[int(rng.integers(len(pool)))] if u[1] < 0.5 else camera_entry[2]
        if u[2] < 0.4:
            capture_time = None
        elif u[2] < 0.7:
            capture_time = uploaded_at + timedelta(days=float(rng.uniform(1, 400)))  # after the upload
        else:
            capture_time = before_upload.replace(minute=0, second=0)
        location = _iso6709(rng, _COUNTRIES[int(rng.integers(len(_COUNTRIES)))]) if u[3] < 0.2 else None
        generator_shape = u[4] < 0.4
    elif family == "declared":
        declared = True
        source_type = "trainedAlgorithmicMedia"
        pool = _SYNTH_IMAGE_SOFTWARE if plan.media_type == "image" else _SYNTH_AV_SOFTWARE
        software = pool[int(rng.integers(len(pool)))] if u[0] < 0.6 else None
        generator_shape = u[1] < 0.5
    return MetadataPlan(camera, software, capture_time, location, source_type, bool(declared), bool(generator_shape))


# ----------------------------------------------------------------------------------------------
# Visual content.


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


# ----------------------------------------------------------------------------------------------
# Audio content.


@dataclass(frozen=True)
class _SpeechTracks:
    """Speech parameters at the control rate: what is said and when."""

    voicing: np.ndarray
    frication: np.ndarray
    formants: np.ndarray  # (n, 3) Hz
    openness: np.ndarray  # mouth opening, also drives the face's mouth


@dataclass(frozen=True)
class _Voice:
    f0: float
    declination: float
    pitch_walk: float  # slow random pitch movement (0 for a flat TTS template)
    jitter: float  # cycle-to-cycle period perturbation
    shimmer: float  # cycle-to-cycle amplitude perturbation
    breath: float
    tract_scale: float
    open_quotient: float


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred box average along the first axis, edges padded; O(n) whatever the width."""
    if width <= 1:
        return x
    pad = [(width // 2, width - 1 - width // 2)] + [(0, 0)] * (x.ndim - 1)
    sums = np.cumsum(np.pad(x, pad, mode="edge"), axis=0)
    sums = np.concatenate([np.zeros((1, *x.shape[1:])), sums], axis=0)
    return (sums[width:] - sums[:-width]) / width


def _speech_tracks(rng: np.random.Generator, duration: float, regular: bool) -> _SpeechTracks:
    n = max(2, round(duration * _CONTROL_RATE))
    voicing, frication, openness = np.zeros(n), np.zeros(n), np.zeros(n)
    formants = np.tile(np.array([500.0, 1500.0, 2500.0]), (n, 1))
    # A TTS front end quantises durations to its frame hop and keeps them even.
    syllable = rng.uniform(0.11, 0.17)

    def frames_for(seconds: float) -> int:
        if regular:
            return max(2, round(seconds * _CONTROL_RATE / 2) * 2)
        return max(1, round(seconds * _CONTROL_RATE))

    pos = frames_for(rng.uniform(0.05, 0.3))
    last = formants[0]
    while pos < n:
        if rng.random() < 0.18:
            length = frames_for(0.22 if regular else rng.uniform(0.08, 0.45))
            formants[pos : pos + length] = last
            pos += length
            continue
        if rng.random() < 0.45:
            length = frames_for(0.06 if regular else rng.uniform(0.04, 0.1))
            frication[pos : pos + length] = 0.6 if regular else rng.uniform(0.3, 0.8)
            formants[pos : pos + length] = last
            pos += length
        vowel = int(rng.integers(len(_VOWEL_FORMANTS)))
        seconds = syllable * (rng.uniform(0.9, 1.1) if regular else rng.lognormal(0, 0.35))
        length = frames_for(seconds)
        target = _VOWEL_FORMANTS[vowel] * (1.0 if regular else rng.uniform(0.95, 1.05, 3))
        voicing[pos : pos + length] = 0.9 if regular else rng.uniform(0.6, 1.0)
        formants[pos : pos + length] = target
        openness[pos : pos + length] = _VOWEL_OPENNESS[vowel]
        last = target
        pos += length
    return _SpeechTracks(
        voicing=_moving_average(voicing, 5),
        frication=_moving_average(frication, 3),
        formants=_moving_average(formants, 8),
        openness=_moving_average(openness, 6),
    )


def _time_warped(tracks: _SpeechTracks, rng: np.random.Generator) -> _SpeechTracks:
    """The same words re-timed, as a voice clone laid over someone else's lips would be."""
    n = len(tracks.voicing)
    t = np.arange(n, dtype=np.float64)
    knots = np.linspace(0, n - 1, 6)
    offset = np.interp(t, knots, rng.normal(0, 1, 6)) * rng.uniform(8, 30)
    source = np.clip(t + offset, 0, n - 1)
    warp = lambda track: np.interp(source, t, track)  # noqa: E731
    return _SpeechTracks(
        voicing=warp(tracks.voicing),
        frication=warp(tracks.frication),
        formants=np.stack([warp(tracks.formants[:, k]) for k in range(3)], axis=1),
        openness=warp(tracks.openness),
    )


def _make_voice(rng: np.random.Generator, tts_irregularity: float | None) -> _Voice:
    f0 = math.exp(rng.uniform(math.log(90), math.log(250)))
    tract = float(np.clip(1.0 + (f0 - 120) / 400 + rng.normal(0, 0.04), 0.88, 1.3))
    if tts_irregularity is None:  # a human voice
        return _Voice(f0, rng.uniform(0.05, 0.2), rng.uniform(0.04, 0.1), rng.uniform(0.005, 0.02),
                      rng.uniform(0.03, 0.1), rng.uniform(0.02, 0.08), tract, rng.uniform(0.5, 0.7))  # fmt: skip
    k = tts_irregularity  # 0 = perfectly periodic; small values make subtle items
    return _Voice(f0, rng.uniform(0.08, 0.15), 0.01 * k, 0.004 * k, 0.02 * k, 0.01, tract, 0.6)


def _colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum 1/f^exponent (0 white, 1 pink, 2 brown), unit std."""
    length = fft.next_fast_len(n, real=True)
    spectrum = fft.rfft(rng.standard_normal(length))
    freqs = fft.rfftfreq(length)
    freqs[0] = freqs[1] if length > 2 else 1.0
    spectrum *= freqs ** (-exponent / 2)
    noise = fft.irfft(spectrum, length)[:n]
    return noise / (noise.std() + 1e-12)


def _formant_filter(source: np.ndarray, formants: np.ndarray, tract: float, sr: int) -> np.ndarray:
    """Cascade of time-varying two-pole resonators, updated when the formants move."""
    n = len(source)
    block = max(1, round(sr / _CONTROL_RATE))
    blocks = -(-n // block)
    index = np.minimum(np.arange(blocks) * block * _CONTROL_RATE // sr, len(formants) - 1)
    freqs = formants[index] * tract
    extra = np.tile(np.array([3300.0, 4400.0]) * tract, (blocks, 1))
    freqs = np.concatenate([freqs, extra], axis=1)
    bandwidths = np.array([70.0, 100.0, 140.0, 200.0, 260.0])
    radius = np.exp(-np.pi * bandwidths / sr)[None, :].repeat(blocks, 0)
    theta = 2 * np.pi * freqs / sr
    a1, a2 = -2 * radius * np.cos(theta), radius**2
    b0 = 1 + a1 + a2  # unity gain at DC (Klatt resonator)
    usable = freqs < 0.46 * sr
    a1, a2, b0 = np.where(usable, a1, 0.0), np.where(usable, a2, 0.0), np.where(usable, b0, 1.0)
    # Steady vowels keep their coefficients; filtering whole steady runs saves most calls.
    starts = [0]
    for k in range(1, blocks):
        if np.max(np.abs(freqs[k] - freqs[starts[-1]]) / freqs[starts[-1]]) > 0.01:
            starts.append(k)
    starts.append(blocks)
    sections = np.zeros((freqs.shape[1], 6))
    sections[:, 3] = 1.0
    state = np.zeros((freqs.shape[1], 2))
    out = np.empty(n)
    for begin, end in itertools.pairwise(starts):
        sections[:, 0], sections[:, 4], sections[:, 5] = b0[begin], a1[begin], a2[begin]
        span = slice(begin * block, end * block)
        out[span], state = signal.sosfilt(sections, source[span], zi=state)
    return out


def _synthesize_speech(rng: np.random.Generator, tracks: _SpeechTracks, voice: _Voice, sr: int) -> np.ndarray:
    n_ctrl = len(tracks.voicing)
    n = int(n_ctrl * sr / _CONTROL_RATE)
    t_ctrl = np.arange(n_ctrl) / _CONTROL_RATE
    t = np.arange(n) / sr
    duration = n_ctrl / _CONTROL_RATE
    walk = _moving_average(rng.standard_normal(n_ctrl), 60) * 6 * voice.pitch_walk
    accent = 0.08 * _moving_average(tracks.openness, 30)  # pitch rises a little on open vowels
    f0_ctrl = voice.f0 * (1 + voice.declination * (0.5 - t_ctrl / duration)) * (1 + walk + accent)
    if voice.pitch_walk < 0.005:  # TTS template: one smooth rise-fall per phrase, nothing else
        period, depth = rng.uniform(0.9, 1.8), rng.uniform(0.03, 0.08)
        f0_ctrl = voice.f0 * (
            1 + voice.declination * (0.5 - t_ctrl / duration) + depth * np.sin(2 * np.pi * t_ctrl / period)
        )
    f0 = np.interp(t, t_ctrl, np.clip(f0_ctrl, 70, 330))
    cycles = np.floor(np.cumsum(f0 / sr)).astype(np.int64)
    period_noise = rng.standard_normal(int(cycles[-1]) + 3)
    phase = np.cumsum(f0 * (1 + voice.jitter * period_noise[cycles]) / sr)
    cycle = np.floor(phase).astype(np.int64)
    frac = phase - cycle
    # Rosenberg glottal pulse from the continuous phase, so a TTS source is exactly periodic.
    opening, closing = voice.open_quotient * 0.8, voice.open_quotient * 0.2
    pulse = np.where(frac < opening, 0.5 * (1 - np.cos(np.pi * frac / opening)),
                     np.where(frac < opening + closing, np.cos(np.pi * (frac - opening) / (2 * closing)), 0.0))  # fmt: skip
    amplitude = 1 + voice.shimmer * rng.standard_normal(int(cycle[-1]) + 3)[np.minimum(cycle, int(cycle[-1]) + 2)]
    voicing = np.interp(t, t_ctrl, tracks.voicing)
    source = np.diff(pulse, prepend=0.0) * amplitude * voicing * (sr / f0) / 4
    source += voice.breath * rng.standard_normal(n) * voicing * 0.1
    voiced = _formant_filter(source, tracks.formants, voice.tract_scale, sr)
    hiss_band = (min(2500.0, 0.3 * sr), min(7500.0, 0.47 * sr))
    hiss = signal.sosfilt(signal.butter(2, hiss_band, "bandpass", fs=sr, output="sos"), rng.standard_normal(n))
    frication = np.interp(t, t_ctrl, tracks.frication)
    speech = voiced / (np.abs(voiced).max() + 1e-9) + 0.35 * hiss * frication / (hiss.std() * 4 + 1e-9)
    return speech


def _music(rng: np.random.Generator, duration: float, sr: int) -> np.ndarray:
    n = int(duration * sr)
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(70, 140)
    root = rng.uniform(45, 58)
    chords = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (-3, 0, 4))
    rolloff = rng.uniform(1.0, 2.0)
    t_beat = 0.0
    step = 0
    chord = chords[0]
    while t_beat < duration:
        if step % 4 == 0:  # a new chord every bar
            chord = chords[int(rng.integers(len(chords)))]
        notes = [root + c for c in chord] + ([root + 12 + chord[int(rng.integers(3))]] if rng.random() < 0.7 else [])
        start = int(t_beat * sr)
        length = min(int(beat * sr * rng.uniform(0.8, 1.6)), n - start)
        if length > 0:
            tt = np.arange(length) / sr
            envelope = np.minimum(tt / 0.01, 1) * np.exp(-tt / rng.uniform(0.2, 0.8))
            for midi in notes:
                freq = 440 * 2 ** ((midi - 69) / 12)
                # 5 Hz vibrato of +-0.3%: the integral of 1 + 0.003 sin(2 pi 5 t), as a phase.
                warped = tt - 0.003 / (2 * np.pi * 5) * np.cos(2 * np.pi * 5 * tt)
                for harmonic in range(1, 7):
                    if harmonic * freq < 0.45 * sr:
                        out[start : start + length] += (
                            np.sin(2 * np.pi * harmonic * freq * warped) / harmonic**rolloff * envelope
                        )
            if rng.random() < 0.6:  # a kick drum: a falling sine burst
                kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-tt / 0.03)) * tt) * np.exp(-tt / 0.12)
                out[start : start + length] += 1.5 * kick
        t_beat += beat
        step += 1
    return out


def _ambient(rng: np.random.Generator, duration: float, sr: int) -> np.ndarray:
    n = int(duration * sr)
    bed = _colored_noise(rng, n, rng.uniform(0.8, 2.0))
    t = np.arange(n) / sr
    bed *= 1 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.05, 0.4) * t + rng.uniform(0, 6))
    for _ in range(int(rng.integers(2, 8))):  # chirps, clicks, distant events
        start = int(rng.uniform(0, duration - 0.3) * sr)
        tt = np.arange(int(rng.uniform(0.05, 0.3) * sr)) / sr
        f_start = rng.uniform(1500, min(6000.0, 0.4 * sr))
        sweep = np.sin(2 * np.pi * (f_start * tt + rng.uniform(-4000, 4000) * tt**2)) * np.hanning(len(tt))
        bed[start : start + len(tt)] += rng.uniform(0.5, 3.0) * sweep
    if rng.random() < 0.3:
        mains = 50.0 if rng.random() < 0.5 else 60.0
        bed += 0.3 * sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3))
    return bed


def _room_response(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A short synthetic room impulse response: direct path, early reflections, damped tail."""
    rt60 = rng.uniform(0.15, 0.7)
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail = signal.lfilter([1 - 0.6], [1, -0.6], tail)  # walls absorb the highs
    ir = tail * rng.uniform(0.05, 0.3)
    ir[0] = 1.0
    for _ in range(int(rng.integers(3, 8))):
        ir[min(n - 1, int(rng.uniform(0.002, 0.03) * sr))] += rng.uniform(0.15, 0.6) * rng.choice([-1, 1])
    return ir / np.abs(ir).sum() * 4


def _add_noise(rng: np.random.Generator, x: np.ndarray, snr_db: float, sr: int) -> np.ndarray:
    noise = _colored_noise(rng, len(x), rng.uniform(0.6, 2.0))
    if rng.random() < 0.15:
        t = np.arange(len(x)) / sr
        noise += 2 * np.sin(2 * np.pi * (50.0 if rng.random() < 0.5 else 60.0) * t)
    power = np.mean(x**2) + 1e-12
    return x + noise * math.sqrt(power / (10 ** (snr_db / 10)) / (np.mean(noise**2) + 1e-12))


def _noise_gate(x: np.ndarray, sr: int, threshold: float) -> np.ndarray:
    """Attenuates quiet stretches (noise between words), like a call app's suppression."""
    envelope = _moving_average(np.abs(x), int(0.03 * sr))
    gain = np.clip(envelope / (threshold * np.abs(x).max() + 1e-12), 0, 1) ** 2
    return x * _moving_average(gain, int(0.01 * sr))


def _stft(x: np.ndarray, n_fft: int, hop: int, window: np.ndarray) -> np.ndarray:
    frames = 1 + (len(x) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    return np.fft.rfft(x[index] * window, axis=1)


def _istft(spectrum: np.ndarray, n_fft: int, hop: int, window: np.ndarray, length: int) -> np.ndarray:
    frames = np.fft.irfft(spectrum, n=n_fft, axis=1) * window
    overlap = n_fft // hop
    n_frames = len(frames)
    out = np.zeros((n_frames + overlap - 1) * hop)
    norm = np.zeros_like(out)
    blocks = frames.reshape(n_frames, overlap, hop)
    win_blocks = (window**2).reshape(overlap, hop)
    out_blocks = out.reshape(-1, hop)
    norm_blocks = norm.reshape(-1, hop)
    for r in range(overlap):
        out_blocks[r : r + n_frames] += blocks[:, r]
        norm_blocks[r : r + n_frames] += win_blocks[r]
    out = out / np.maximum(norm, 1e-8)
    return out[:length] if len(out) >= length else np.pad(out, (0, length - len(out)))


def _griffin_lim(rng: np.random.Generator, x: np.ndarray, sr: int, iterations: int, smear_high: bool) -> np.ndarray:
    """Magnitude-only resynthesis: phase rebuilt from a random start by a few GL iterations."""
    n_fft = 512 if sr <= 24000 else 1024
    hop = n_fft // 4
    window = np.hanning(n_fft + 1)[:-1]
    padded = np.pad(x, (n_fft, n_fft))
    magnitude = np.abs(_stft(padded, n_fft, hop, window))
    if smear_high:  # a mel-like front end blurs harmonics above ~2 kHz
        cut = int(2000 / sr * n_fft)
        magnitude[:, cut:] = cv2.blur(magnitude[:, cut:].astype(np.float32), (5, 1)).astype(np.float64)
    phase = np.exp(2j * np.pi * rng.random(magnitude.shape))
    for _ in range(iterations):
        estimate = _istft(magnitude * phase, n_fft, hop, window, len(padded))
        rebuilt = _stft(estimate, n_fft, hop, window)
        phase = rebuilt / np.maximum(np.abs(rebuilt), 1e-9)
    return _istft(magnitude * phase, n_fft, hop, window, len(padded))[n_fft : n_fft + len(x)]


def _neural_bandlimit(rng: np.random.Generator, x: np.ndarray, sr: int) -> np.ndarray:
    """Brick-wall cutoff at 4-7 kHz, tones at multiples of sr/U, and a weak spectral image."""
    n = len(x)
    length = fft.next_fast_len(n, real=True)
    cutoff = min(rng.uniform(4000, 7000), 0.45 * sr)
    spectrum = fft.rfft(x, length)
    freqs = fft.rfftfreq(length, 1 / sr)
    transition = rng.uniform(20, 150)
    spectrum *= 0.5 * (1 - np.tanh((freqs - cutoff) / (transition / 4)))
    y = fft.irfft(spectrum, length)[:n]
    envelope = np.sqrt(_moving_average(y**2, int(0.02 * sr)))
    t = np.arange(n) / sr
    factor = int(rng.choice([4, 8, 16]))
    level = 10 ** (-rng.uniform(32, 50) / 20)
    tones = sum(np.cos(2 * np.pi * k * sr / factor * t + rng.uniform(0, 6)) for k in range(1, factor // 2))
    y = y + level * envelope * tones * 3
    # Zero-insertion upsampling in the last layer leaves a faint mirror of the low band.
    quarter = fft.irfft(fft.rfft(y, length) * (freqs < sr / 4), length)[:n]
    y = y + 10 ** (-rng.uniform(30, 45) / 20) * quarter * np.cos(np.pi * np.arange(n))
    return y


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    g = math.gcd(sr_in, sr_out)
    return signal.resample_poly(x, sr_out // g, sr_in // g)


def _render_audio(
    rng: np.random.Generator,
    family: str | None,
    content: str,
    duration: float,
    file_sr: int,
    tracks: _SpeechTracks | None,
) -> np.ndarray:
    """A mono float32 clip at ``file_sr``: a real recording or one synthetic audio family.

    Args:
        rng: the item's audio random stream.
        family: None for a real recording, else an audio family name.
        content: "speech", "music" or "ambient" (TTS always makes speech).
        duration: seconds.
        file_sr: sample rate of the file.
        tracks: speech timing to follow (for lip sync), or None to make fresh speech.
    """
    if family is None:
        lower = [r for r in (16000, 22050, 24000) if r < file_sr]
        content_sr = file_sr if rng.random() < 0.75 or not lower else int(rng.choice(lower))
    else:  # neural generators mostly run at 16-24 kHz, some at 44.1-48 kHz
        content_sr = int(rng.choice([16000, 22050, 24000])) if rng.random() < 0.8 else file_sr
        content_sr = min(content_sr, file_sr)
    if family == "tts":
        content = "speech"
    if content == "speech":
        regular = family == "tts"
        tracks = tracks if tracks is not None else _speech_tracks(rng, duration, regular)
        voice = _make_voice(rng, rng.uniform(0, 0.25) if regular else None)
        x = _synthesize_speech(rng, tracks, voice, content_sr)
    elif content == "music":
        x = _music(rng, duration, content_sr)
    else:
        x = _ambient(rng, duration, content_sr)
    x = x[: int(duration * content_sr)]
    x = np.pad(x, (0, max(0, int(duration * content_sr) - len(x))))
    x = signal.sosfilt(signal.butter(2, rng.uniform(50, 140), "highpass", fs=content_sr, output="sos"), x)

    if family is None:
        if rng.random() < 0.85:
            x = signal.fftconvolve(x, _room_response(rng, content_sr))[: len(x)]
        if rng.random() < 0.85:  # some are studio-clean or denoised by the recording app
            x = _add_noise(rng, x, rng.uniform(10, 40), content_sr)
        if rng.random() < 0.3 and content_sr > 16000:  # a cheap microphone rolls off gently
            x = signal.sosfilt(signal.butter(2, rng.uniform(5000, 0.45 * content_sr), fs=content_sr, output="sos"), x)
        elif rng.random() < 0.05:  # a phone call
            x = signal.sosfilt(signal.butter(4, (300, 3400), "bandpass", fs=content_sr, output="sos"), x)
    elif family == "vocoder":
        if rng.random() < 0.4:  # trained on reverberant data, it reproduces some room
            x = signal.fftconvolve(x, _room_response(rng, content_sr))[: len(x)]
        x = _griffin_lim(rng, x, content_sr, int(rng.integers(1, 13)), rng.random() < 0.5)
        if rng.random() < 0.35:
            x = _add_noise(rng, x, rng.uniform(18, 40), content_sr)
    elif family == "bandlimit":
        x = _neural_bandlimit(rng, x, content_sr)
        if rng.random() < 0.3:
            x = _add_noise(rng, x, rng.uniform(20, 40), content_sr)
    elif family == "tts" and rng.random() < 0.35:
        x = _add_noise(rng, x, rng.uniform(25, 45), content_sr)
    x = _resample(x, content_sr, file_sr)
    if family is not None and rng.random() < 0.6:
        # Mixed over a real background after generation: full-band noise hides the band edge.
        x = _add_noise(rng, x, rng.uniform(20, 45), file_sr)
    if rng.random() < 0.15:  # the app's noise suppression, on either class
        x = _noise_gate(x, file_sr, rng.uniform(0.02, 0.1))
    peak = np.abs(x).max() + 1e-9
    return (x / peak * 10 ** (-rng.uniform(1, 9) / 20)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Files.


def _xmp_packet(source_type: str, software: str | None) -> bytes:
    tool = f' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="{software}"' if software else ""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"{tool}\n'
        f'   Iptc4xmpExt:DigitalSourceType="{_IPTC_PREFIX}{source_type}"/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def _exif(meta: MetadataPlan) -> Image.Exif | None:
    if meta.camera is None and meta.software is None:
        return None
    exif = Image.Exif()
    if meta.camera:
        exif[0x010F], exif[0x0110] = meta.camera
    if meta.software:
        exif[0x0131] = meta.software
    if meta.capture_time and meta.camera:
        stamp = meta.capture_time.strftime("%Y:%m:%d %H:%M:%S")
        exif[0x0132] = stamp
        exif.get_ifd(0x8769)[0x9003] = stamp  # DateTimeOriginal lives in the Exif sub-IFD
    return exif


def _write_image(path: Path, container: str, frames: list[np.ndarray], meta: MetadataPlan,
                 rng: np.random.Generator, fps: float) -> None:  # fmt: skip
    image = Image.fromarray(frames[0])
    exif = _exif(meta)
    xmp = _xmp_packet(meta.source_type, meta.software) if meta.source_type else None
    if container == "gif":
        colours = int(rng.choice([64, 128, 256]))
        palettes = [Image.fromarray(f).quantize(colours, method=Image.Quantize.FASTOCTREE) for f in frames]
        extra: dict[str, Any] = {"comment": meta.software.encode()} if meta.software else {}
        if len(palettes) > 1:
            extra.update(save_all=True, append_images=palettes[1:], duration=int(1000 / fps), loop=0)
        palettes[0].save(path, "GIF", **extra)
        return
    options: dict[str, Any] = {}
    if exif is not None:
        options["exif"] = exif
    if container == "jpeg":
        options.update(quality=int(rng.integers(65, 97)), subsampling=int(rng.choice([0, 1, 2], p=[0.15, 0.1, 0.75])))
        if xmp:
            options["xmp"] = xmp
        image.save(path, "JPEG", **options)
    elif container == "webp":
        lossless = rng.random() < 0.1
        options.update(quality=int(rng.integers(60, 92)), lossless=lossless, method=4)
        if xmp:
            options["xmp"] = xmp
        image.save(path, "WEBP", **options)
    else:
        if rng.random() < 0.4:  # a screenshot or re-share of a JPEG, saved as PNG
            _, buffer = cv2.imencode(
                ".jpg", frames[0][..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))]
            )
            image = Image.fromarray(cv2.imdecode(buffer, cv2.IMREAD_COLOR)[..., ::-1])
        if xmp:
            info = PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"), zip=False)
            options["pnginfo"] = info
        image.save(path, "PNG", **options)


def _av_tags(meta: MetadataPlan, title: str | None) -> dict[str, str]:
    """Container tags: software strings, capture time, place, camera identity, XMP claims."""
    tags: dict[str, str] = {}
    if meta.software:
        tags["encoded_by"] = meta.software
        tags["software"] = meta.software
    if meta.capture_time:
        tags["creation_time"] = meta.capture_time.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    if meta.location:
        tags["location"] = meta.location
    if meta.camera:
        tags["make"], tags["model"] = meta.camera
        tags["com.apple.quicktime.make"], tags["com.apple.quicktime.model"] = meta.camera
    if meta.source_type:
        # FFmpeg cannot write an XMP box, so the claim rides in a comment as an XMP packet.
        tags["comment"] = _xmp_packet(meta.source_type, meta.software).decode("utf-8")
    if title:
        tags["title"] = title
    return tags


def _muxer_options(container: str) -> dict[str, str]:
    # bitexact: no random stream serials or muxer version strings, so files are reproducible.
    options = {"fflags": "+bitexact"}
    if container in ("mp4", "m4a"):
        options["movflags"] = "use_metadata_tags"
    return options


def _audio_frame(samples: np.ndarray, sr: int, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None, :], dtype=np.float32), format="fltp",
                                       layout="mono")  # fmt: skip
    frame.sample_rate = sr
    frame.pts = pts
    return frame


def write_video(path: Path, container: str, frames: Iterable[np.ndarray], size: tuple[int, int], fps: int,
                 audio: np.ndarray, audio_sr: int, tags: Mapping[str, str], rng: np.random.Generator) -> None:  # fmt: skip
    gop = int(rng.integers(5, 61))
    with av.open(str(path), "w", format=container, options=_muxer_options(container)) as output:
        for key, value in tags.items():
            output.metadata[key] = value
        if container == "mp4":
            # Only the two fastest presets: from "veryfast" on, this x264 build's output depends
            # on uninitialised memory, so identical frames encoded to different bytes run to run.
            video = output.add_stream("libx264", rate=fps)
            video.options = {"crf": str(int(rng.integers(18, 31))), "g": str(gop), "keyint_min": str(min(gop, 25)),
                             "preset": str(rng.choice(["ultrafast", "superfast"])),
                             "threads": "1"}  # fmt: skip
            sound = output.add_stream("aac", rate=audio_sr)
            sound.bit_rate = int(rng.choice([48000, 64000, 96000, 128000]))
            sound.options = {"aac_coder": "fast" if rng.random() < 0.75 else "twoloop"}
        else:
            video = output.add_stream("libvpx-vp9", rate=fps)
            video.options = {"crf": str(int(rng.integers(24, 41))), "b": "0", "g": str(gop), "deadline": "realtime",
                             "cpu-used": str(int(rng.integers(6, 9))), "threads": "1", "row-mt": "0"}  # fmt: skip
            sound = output.add_stream("libopus", rate=audio_sr)
            sound.bit_rate = int(rng.choice([24000, 32000, 48000, 64000]))
            sound.options = {"compression_level": str(int(rng.choice([3, 5, 8, 10])))}
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.gop_size = gop
        sound.layout = "mono"
        audio_pos = 0
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index
            output.mux(video.encode(picture))
            # Interleave the audio up to this frame, in half-second chunks.
            audio_end = min(len(audio), round((index + 1) * audio_sr / fps))
            if audio_end - audio_pos >= audio_sr // 2:
                output.mux(sound.encode(_audio_frame(audio[audio_pos:audio_end], audio_sr, audio_pos)))
                audio_pos = audio_end
        if audio_pos < len(audio):
            output.mux(sound.encode(_audio_frame(audio[audio_pos:], audio_sr, audio_pos)))
        output.mux(video.encode(None))
        output.mux(sound.encode(None))


_AUDIO_CODECS = {"wav": "pcm_s16le", "mp3": "libmp3lame", "flac": "flac", "ogg": "libopus", "m4a": "aac"}
_AUDIO_FORMATS = {"wav": "wav", "mp3": "mp3", "flac": "flac", "ogg": "ogg", "m4a": "ipod"}


def write_audio(path: Path, container: str, samples: np.ndarray, sr: int, tags: Mapping[str, str],
                 rng: np.random.Generator) -> None:  # fmt: skip
    with av.open(str(path), "w", format=_AUDIO_FORMATS[container], options=_muxer_options(container)) as output:
        stream = output.add_stream(_AUDIO_CODECS[container], rate=sr)
        stream.layout = "mono"
        if container == "mp3":
            stream.bit_rate = int(rng.choice([32000, 64000, 96000, 128000, 192000]))
        elif container == "m4a":
            stream.bit_rate = int(rng.choice([24000, 32000, 48000, 64000, 96000, 128000]))
            stream.options = {"aac_coder": "fast" if rng.random() < 0.75 else "twoloop"}
        elif container == "ogg":
            stream.bit_rate = int(rng.choice([12000, 16000, 24000, 32000, 64000, 96000]))
            stream.options = {"compression_level": str(int(rng.choice([3, 5, 8, 10])))}
        # Ogg keeps tags per stream (OpusTags); the other muxers read the container's.
        target = stream.metadata if container == "ogg" else output.metadata
        for key, value in tags.items():
            target[key] = value
        output.mux(stream.encode(_audio_frame(samples, sr, 0)))
        output.mux(stream.encode(None))


# ----------------------------------------------------------------------------------------------
# Items.


def _even(value: float) -> int:
    return max(16, round(value / 2) * 2)  # 4:2:0 chroma needs even sides


def _visual_size(rng: np.random.Generator, media_type: str, generator_shape: bool, animated: bool) -> tuple[int, int]:
    if generator_shape:
        if media_type == "video" or animated:
            return ((128, 128), (192, 192), (256, 256), (256, 192), (192, 128))[int(rng.integers(5))]
        return ((192, 192), (256, 256), (320, 320), (320, 192), (256, 192))[int(rng.integers(5))]
    aspect = ((4, 3), (16, 9), (3, 2), (1, 1))[int(rng.choice(4, p=[0.45, 0.3, 0.17, 0.08]))]
    long_side = rng.uniform(160, 256) if media_type == "video" or animated else rng.uniform(200, 320)
    size = (_even(long_side), _even(long_side * aspect[1] / aspect[0]))
    portrait = rng.random() < (0.15 if media_type == "video" else 0.3)
    return (size[1], size[0]) if portrait else size


def _platform_size(rng: np.random.Generator, size: tuple[int, int]) -> tuple[int, int]:
    """Platforms often transcode to a smaller size; applies to both classes."""
    if rng.random() >= 0.3:
        return size
    scale = rng.uniform(0.6, 0.92)
    return _even(size[0] * scale), _even(size[1] * scale)


def _mouth_track(tracks: _SpeechTracks | None, frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    if tracks is None:  # not talking: small idle movements
        return np.clip(0.1 + 0.1 * _smooth_path(rng, frames, 1.0)[:, 0], 0, 1)
    times = np.arange(frames) / fps * _CONTROL_RATE
    return np.interp(times, np.arange(len(tracks.openness)), tracks.openness * np.minimum(tracks.voicing * 1.5, 1))


def _make_video(path: Path, plan: ItemPlan, meta: MetadataPlan, seed: int) -> None:
    rng_visual = _rng(seed, _ITEM_STREAM, plan.index, _VISUAL)
    rng_audio = _rng(seed, _ITEM_STREAM, plan.index, _AUDIO)
    rng_encode = _rng(seed, _ITEM_STREAM, plan.index, _ENCODE)
    if meta.generator_shape:
        fps = int(rng_visual.choice([12, 16, 24, 25], p=[0.25, 0.35, 0.3, 0.1]))
        duration = float(rng_visual.choice([2.0, 3.0, 4.0])) if rng_visual.random() < 0.5 else rng_visual.uniform(2, 4)
    else:
        fps = int(rng_visual.choice([12, 15, 20, 24, 25], p=[0.1, 0.25, 0.15, 0.25, 0.25]))
        duration = rng_visual.uniform(2, 4)
    frames = round(duration * fps)
    duration = frames / fps
    size = _visual_size(rng_visual, "video", meta.generator_shape, False)
    out_size = _platform_size(rng_visual, size)

    content = _weighted_choice(rng_audio, (("speech", 0.75), ("music", 0.15), ("ambient", 0.1)))
    if plan.audio_family == "tts":
        content = "speech"
    voice_clone = plan.audio_family is not None and plan.visual_family is None
    spoken = heard = None  # what the lips say, and what the soundtrack says
    if content == "speech":
        # A generated avatar speaks its own (regular) script in sync; real lips speak naturally.
        spoken = heard = _speech_tracks(
            rng_audio, duration + 0.1, regular=plan.audio_family == "tts" and not voice_clone
        )
        if voice_clone:  # a cloned voice over someone else's lips only roughly follows them
            if plan.audio_family == "tts":
                heard = _speech_tracks(rng_audio, duration + 0.1, regular=True)
            else:
                heard = _time_warped(spoken, rng_audio)
    audio_sr = int(rng_audio.choice([16000, 22050, 44100, 48000], p=[0.2, 0.15, 0.3, 0.35]))
    if plan.container == "webm":
        audio_sr = 48000  # Opus runs at 48 kHz
    audio = _render_audio(rng_audio, plan.audio_family, content, duration, audio_sr, heard)
    mouth = _mouth_track(spoken, frames, fps, rng_visual)
    pictures = _render_frames(rng_visual, plan.visual_family, size, out_size, frames, mouth)
    write_video(path, plan.container, pictures, out_size, fps, audio, audio_sr, _av_tags(meta, None), rng_encode)


def _make_image(path: Path, plan: ItemPlan, meta: MetadataPlan, seed: int) -> None:
    rng_visual = _rng(seed, _ITEM_STREAM, plan.index, _VISUAL)
    rng_encode = _rng(seed, _ITEM_STREAM, plan.index, _ENCODE)
    animated = plan.container == "gif" and rng_visual.random() < 0.3
    frames = int(rng_visual.integers(6, 13)) if animated else 1
    fps = float(rng_visual.choice([8, 10, 12]))
    size = _visual_size(rng_visual, "image", meta.generator_shape, animated)
    out_size = _platform_size(rng_visual, size)
    mouth = _mouth_track(None, frames, fps, rng_visual)
    pictures = list(_render_frames(rng_visual, plan.visual_family, size, out_size, frames, mouth))
    _write_image(path, plan.container, pictures, meta, rng_encode, fps)


def _make_audio(path: Path, plan: ItemPlan, meta: MetadataPlan, seed: int) -> None:
    rng_audio = _rng(seed, _ITEM_STREAM, plan.index, _AUDIO)
    rng_encode = _rng(seed, _ITEM_STREAM, plan.index, _ENCODE)
    if plan.container == "ogg":
        sr = 48000  # Opus always decodes at 48 kHz
    else:
        sr = int(rng_audio.choice([16000, 22050, 24000, 44100, 48000], p=[0.3, 0.15, 0.15, 0.2, 0.2]))
    if meta.generator_shape and rng_audio.random() < 0.6:
        duration = float(rng_audio.choice([2.0, 3.0, 4.0, 5.0, 6.0]))
    else:
        duration = rng_audio.uniform(2, 6)
    content = _weighted_choice(rng_audio, (("speech", 0.65), ("music", 0.2), ("ambient", 0.15)))
    samples = _render_audio(rng_audio, plan.audio_family, content, duration, sr, None)
    title = ("New Recording", "Voice 012", "audio", "output", "sample", None)[int(rng_encode.integers(6))]
    write_audio(path, plan.container, samples, sr, _av_tags(meta, title), rng_encode)


def _make_corrupt(path: Path, kind: str, rng: np.random.Generator) -> None:
    if kind in ("truncated_mp4", "truncated_webm"):
        container = "mp4" if kind == "truncated_mp4" else "webm"
        full = path.with_name(path.name + ".partial")
        size = (96, 64)
        frames = (np.full((64, 96, 3), int(rng.integers(30, 220)), np.uint8) for _ in range(12))
        audio = (0.1 * np.sin(np.arange(48000) * 0.05)).astype(np.float32)
        write_video(full, container, frames, size, 12, audio, 48000, {}, rng)
        data = full.read_bytes()
        full.unlink()
        # An interrupted upload: the tail (moov index / clusters) never arrived.
        keep = int(len(data) * rng.uniform(0.15, 0.4)) if container == "mp4" else int(rng.integers(24, 120))
        path.write_bytes(data[:keep])
    elif kind == "random_bytes_jpg":
        path.write_bytes(rng.bytes(int(rng.integers(2000, 9000))))
    elif kind == "empty_wav":
        path.write_bytes(b"")
    elif kind == "bad_header_wav":
        garbage = rng.bytes(int(rng.integers(4000, 16000)))
        fmt_chunk = b"fmt " + (16).to_bytes(4, "little") + bytes(2) + bytes(2) + rng.bytes(12)  # format 0, 0 channels
        body = b"WAVE" + fmt_chunk + b"data" + len(garbage).to_bytes(4, "little") + garbage
        path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    else:
        raise ValueError(f"unknown corrupt kind {kind!r}")


_CORRUPT_SHAPES = {
    "truncated_mp4": ("video", "mp4"), "truncated_webm": ("video", "webm"), "random_bytes_jpg": ("image", "jpeg"),
    "empty_wav": ("audio", "wav"), "bad_header_wav": ("audio", "wav"),
}  # fmt: skip


def _labels_row(plan: ItemPlan) -> dict[str, Any]:
    has_visual = plan.media_type in ("video", "image") and plan.corrupt_kind is None
    has_audio = plan.media_type in ("video", "audio") and plan.corrupt_kind is None
    return {
        "content_id": plan.content_id,
        "label": plan.label,
        "visual_label": int(plan.visual_family is not None) if has_visual else None,
        "audio_label": int(plan.audio_family is not None) if has_audio else None,
        "metadata_label": int(plan.metadata_family is not None),
        "families": {"visual": plan.visual_family, "audio": plan.audio_family, "metadata": plan.metadata_family},
        "media_type": plan.media_type,
        "container": plan.container,
        "file_metadata_stripped": plan.stripped,
        "source": "generator",
    }


def _absent_fields(seed: int, plan: ItemPlan) -> frozenset[str]:
    """Which optional event fields this upload's event leaves out (`ABSENT_SHARES`)."""
    rng = _rng(seed, _ITEM_STREAM if plan.corrupt_kind is None else _CORRUPT_STREAM, plan.index, _ABSENCE)
    draws = dict(zip(ABSENT_SHARES, rng.random(len(ABSENT_SHARES))))
    if draws.pop("all_optional") < ABSENT_SHARES["all_optional"]:
        return frozenset(ABSENT_SHARES) | {"notice"}
    return frozenset(name for name, u in draws.items() if u < ABSENT_SHARES[name])


def _without(row: dict[str, Any], absent: frozenset[str]) -> dict[str, Any]:
    """The manifest row with the absent optional fields left out (not nulled: left out)."""
    row = {k: v for k, v in row.items() if k not in absent}
    if "account" in row:
        account = {k: v for k, v in row["account"].items() if f"account.{k}" not in absent}
        if account:
            row["account"] = account
        else:
            del row["account"]
    return row


def _manifest_row(plan: ItemPlan, account: Account, uploaded_at: datetime, surface: str, country: str,
                  declared_ai: bool, notice: dict[str, str] | None, absent: frozenset[str]) -> dict[str, Any]:  # fmt: skip
    row = {
        "content_id": plan.content_id,
        "media_uri": f"media/{plan.content_id}.{_EXTENSIONS.get(plan.container, plan.container)}",
        "account_id": account.account_id,
        "uploaded_at": _rfc3339(uploaded_at),
        "media_type": plan.media_type,
        "surface": surface,
        "country": country,
        "declared_ai": declared_ai,
        "account": {
            "created_at": _rfc3339(account.created_at),
            "verified": account.verified,
            "high_profile": account.high_profile,
            "prior_strikes": account.prior_strikes,
        },
    }
    if notice is not None:
        row["notice"] = notice
    return _without(row, absent)


def account_pool(seed: int) -> tuple[list[Account], tuple[np.ndarray, np.ndarray]]:
    """The uploading accounts of a corpus and their choice weights (real, synthetic uploads)."""
    accounts = _account_pool(seed)
    return accounts, _account_weights(accounts)


def upload_event(
    seed: int, plan: ItemPlan, accounts: list[Account], weights: tuple[np.ndarray, np.ndarray], declared_ai: bool
) -> dict[str, Any]:
    """The manifest row of one item's upload: account, time, surface, country, notice, with the
    optional fields left out at `ABSENT_SHARES` (each from the item's own random streams)."""
    account, uploaded_at, surface, country = _plan_upload(seed, plan, accounts, weights)
    notice = _plan_notice(seed, plan, uploaded_at)
    return _manifest_row(plan, account, uploaded_at, surface, country, declared_ai, notice, _absent_fields(seed, plan))


def generate_corpus(
    out_dir: str | Path,
    count: int,
    seed: int = 0,
    corrupt: int = 0,
    families: Mapping[str, Iterable[str]] | Iterable[str] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Writes a labelled corpus: ``media/``, ``manifest.jsonl`` and ``labels.jsonl``.

    Args:
        out_dir: directory to write into (created if missing).
        count: number of regular (real or synthetic) items.
        seed: non-negative seed; the same arguments give byte-identical output.
        corrupt: number of extra broken files, labelled "corrupt".
        families: synthetic families allowed. None allows all; a mapping such as
            ``{"visual": ["upsample"]}`` restricts only the modalities it names; a flat list of
            names is the complete allow-list across modalities (a modality with none allowed
            makes no synthetic content of that kind).
        workers: processes that make the media (the output is the same for any number).

    Returns:
        A summary: totals by media type, label, container and family per modality.
    """
    if count < 0 or corrupt < 0 or seed < 0:
        raise ValueError("count, corrupt and seed must not be negative")
    allowed = _allowed_families(families)
    out = Path(out_dir)
    media_dir = out / "media"
    media_dir.mkdir(parents=True, exist_ok=True)
    accounts, weights = account_pool(seed)

    plans = [_plan_item(seed, index, allowed) for index in range(count)]
    for j in range(corrupt):
        kind = _CORRUPT_KINDS[j % len(_CORRUPT_KINDS)]
        media_type, container = _CORRUPT_SHAPES[kind]
        plans.append(ItemPlan(count + j, f"c{count + j:06d}", media_type, container, None, None, None, kind))

    make = functools.partial(_make_item, out, seed, accounts, weights)
    if workers > 1 and len(plans) > 1:
        # Every item draws from its own seeded streams, so the bytes do not depend on which
        # process makes it. Forked workers share the account pool and the imported modules.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            rows = pool.map(make, plans, chunksize=8)
    else:
        rows = [make(plan) for plan in plans]

    rows.sort(key=lambda row: (row[0], row[1]))  # an upload stream, in event-time order
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as manifest_file:
        manifest_file.writelines(json.dumps(row[2], sort_keys=True) + "\n" for row in rows)
    with open(out / "labels.jsonl", "w", encoding="utf-8") as labels_file:
        labels_file.writelines(json.dumps(row[3], sort_keys=True) + "\n" for row in rows)
    return _summary(out, plans)


def _make_item(
    out: Path, seed: int, accounts: list[Account], weights: tuple[np.ndarray, np.ndarray], plan: ItemPlan
) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """Writes one item's media file; returns its (upload time, content id, manifest row, labels row)."""
    _, uploaded_at, _, country = _plan_upload(seed, plan, accounts, weights)
    path = out / "media" / f"{plan.content_id}.{_EXTENSIONS[plan.container]}"
    if plan.corrupt_kind:
        _make_corrupt(path, plan.corrupt_kind, _rng(seed, _CORRUPT_STREAM, plan.index, _ENCODE))
        declared = False
    else:
        meta = _plan_metadata(seed, plan, uploaded_at, country)
        {"video": _make_video, "image": _make_image, "audio": _make_audio}[plan.media_type](path, plan, meta, seed)
        declared = meta.declared_ai
    manifest = upload_event(seed, plan, accounts, weights, declared)
    return manifest["uploaded_at"], plan.content_id, manifest, _labels_row(plan)


def _summary(out: Path, plans: list[ItemPlan]) -> dict[str, Any]:
    by_family: dict[str, dict[str, int]] = {m: {} for m in FAMILIES}
    for plan in plans:
        for modality, family in (("visual", plan.visual_family), ("audio", plan.audio_family),
                                 ("metadata", plan.metadata_family)):  # fmt: skip
            if family:
                by_family[modality][family] = by_family[modality].get(family, 0) + 1
    return {
        "out_dir": str(out),
        "items": len(plans),
        "by_media_type": dict(sorted(Counter(p.media_type for p in plans).items())),
        "by_label": dict(sorted(Counter(p.label for p in plans).items())),
        "by_container": dict(sorted(Counter(p.container for p in plans).items())),
        "by_family": {m: dict(sorted(f.items())) for m, f in by_family.items()},
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: writes a corpus and prints a one-line summary to stderr."""
    parser = argparse.ArgumentParser(
        prog="python -m models.corpus",
        description="Generate a deterministic, labelled corpus of real-looking and synthetic media.",
    )
    parser.add_argument("--out", required=True, help="output directory (media/, manifest.jsonl, labels.jsonl)")
    parser.add_argument("--count", type=int, required=True, help="number of real or synthetic items to make")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument("--corrupt", type=int, default=0, help="extra broken files labelled 'corrupt' (default 0)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes that make the media; the bytes are the same for any number (default: one per core)",
    )
    parser.add_argument(
        "--families",
        default=None,
        help="comma-separated synthetic families to allow, across all modalities (default: all of "
        + ", ".join(f"{m}: {'/'.join(n)}" for m, n in FAMILIES.items())
        + ")",
    )
    parser.add_argument(
        "--exclude-families",
        default=None,
        help="comma-separated families to leave out (for leave-one-family-out splits); the rest stay allowed",
    )
    args = parser.parse_args(argv)
    if args.count < 0 or args.corrupt < 0 or args.seed < 0 or args.workers < 1:
        parser.error("--count, --corrupt and --seed must not be negative, and --workers must be at least 1")
    if args.families and args.exclude_families:
        parser.error("give --families or --exclude-families, not both")
    families = None
    if args.families:
        families = [name.strip() for name in args.families.split(",") if name.strip()]
    elif args.exclude_families:
        excluded = {name.strip() for name in args.exclude_families.split(",") if name.strip()}
        known = {name for names in FAMILIES.values() for name in names}
        if excluded - known:
            parser.error(f"unknown families {sorted(excluded - known)}; expected some of {sorted(known)}")
        families = {modality: [n for n in names if n not in excluded] for modality, names in FAMILIES.items()}
    started = time.perf_counter()
    try:
        summary = generate_corpus(
            args.out, args.count, seed=args.seed, corrupt=args.corrupt, families=families, workers=args.workers
        )
    except ValueError as exc:
        parser.error(str(exc))
    elapsed = time.perf_counter() - started
    print(
        f"corpus: {summary['items']} items in {elapsed:.1f}s -> {summary['out_dir']} "
        f"media={summary['by_media_type']} labels={summary['by_label']} families={summary['by_family']}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
