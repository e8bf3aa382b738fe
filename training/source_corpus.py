"""Upload items from media made elsewhere: the sources of `training.sources` as a labelled corpus.

    python -m training.source_corpus --out DIR --role train   [--cache data/sources] [--seed 1]
    python -m training.source_corpus --out DIR --role heldout [--cache data/sources] [--seed 1]

Writes ``media/``, ``manifest.jsonl`` and ``labels.jsonl`` in the generator's format
(`training.corpus`), with each label row naming the `sources` its content came from, so the
two corpora train and evaluate together and a source can be held out.

Training items (`--role train`) go through the same platform chain whatever their class,
since otherwise a detector learns the codec instead of the voice: almost every human
recording in these packages is lossy (Vorbis, Opus, GSM) while a synthesiser writes clean
PCM at its own rate. So every speech item is cut or joined to 2-8 s, passes a lossy round trip
(MP3, AAC, Opus, Vorbis, telephony mu-law at 8 kHz, or none), is resampled to a rate drawn
from what uploads use, and is written in one of the corpus's audio containers. Photographs
are cropped and scaled into the generator's size range (larger ones too) by a resampler drawn
from what software uses (filtered ones, and bilinear without a low-pass filter), or, when a face
is found in some, cut out as a profile picture is (the face aligned, turned a little and sampled
straight at 112-256 px, as face-chip extractors do), and re-encoded (JPEG, WebP, PNG), keeping
the camera's EXIF in some; film clips are cut into 2-4 s segments and given a speech track
(real, or a synthesiser's: a dub), and a still source takes the first frame of each segment
through the photographs' chain, in the split group of the segment it opens.

Held-out items (`--role heldout`) are the files as their packages made them, an upload of a
file made elsewhere: only headerless audio (raw PCM, GSM) is wrapped in WAV so a platform
would accept it, and the synthesisers' WAVs are uploaded as written.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from PIL import Image, ImageOps

from training.corpus import ItemPlan, account_pool, upload_event, write_audio, write_video
from training.image_synthesis import ImageRequest, generate, video_frames
from training.sources import (
    AUTOENCODER_VARIANTS,
    BY_NAME,
    DEFAULT_CACHE,
    ROLES,
    Source,
    content_digest,
    media_files,
    sources_for,
    training_photographs,
)
from training.synthesis import SpeechRequest, sentences, synthesise, voice_languages
from transforms.visual import FaceBox, detect_face

# Items per source and kind (training); held-out speech is capped per source too.
SPEECH_ITEMS = 500
HELDOUT_SPEECH_ITEMS = 400
SYNTH_ITEMS_PER_VOICE = {"festival": 100, "piper": 600, "espeak_ng": 40, "flite": 60}
PHOTO_VARIANTS = 8
# A generator that re-draws photographs: Real-ESRGAN re-draws every training photograph, the
# encoder-decoders one in four each; each re-drawing is uploaded this many ways (twice that for
# an encoder-decoder's), so the photograph's 8 real uploads face 2 + 4 synthetic ones.
REDRAW_VARIANTS = 2
# The held-out generator's faces: stills (half uploaded as the PNG it writes, half as a JPEG
# export) and clips walking between two faces.
HELDOUT_FACE_STILLS = 40
HELDOUT_FACE_CLIPS = 8
HELDOUT_CLIP_FRAMES = 16
HELDOUT_CLIP_FPS = 8
VIDEO_SEGMENT_S = (2.0, 4.0)
VIDEO_VARIANTS = 3
# A film's frames taken as stills: the first frame of each segment, uploaded this many ways.
STILL_VARIANTS = 2
_UTTERANCE_S = (2.0, 8.0)
_AUDIO_CONTAINERS = (("wav", 0.2), ("mp3", 0.25), ("flac", 0.15), ("ogg", 0.2), ("m4a", 0.2))
_IMAGE_CONTAINERS = (("jpeg", 0.55), ("webp", 0.25), ("png", 0.2))
_VIDEO_CONTAINERS = (("mp4", 0.8), ("webm", 0.2))
_RATES = ((8000, 0.08), (16000, 0.3), (22050, 0.14), (24000, 0.12), (44100, 0.18), (48000, 0.18))
_ROUND_TRIPS = (("none", 0.3), ("mp3", 0.2), ("aac", 0.15), ("opus", 0.15), ("vorbis", 0.1), ("telephony", 0.1))
_HEADERLESS_RATES = {"codec2": 8000, "pocketsphinx": 16000}
_KEEP_EXIF_SHARE = 0.4
# Shrinking: PIL's filtered resamplers, and OpenCV's area and bilinear (the last without a
# low-pass filter, so it aliases, as many apps' scalers do).
_SHRINKERS = (("lanczos", 0.35), ("bicubic", 0.2), ("area", 0.2), ("bilinear_unfiltered", 0.25))
# A share of the still uploads of a photograph with a face are its face chip (a profile picture):
# the face framed 1.4-2.2 face-widths wide, turned up to 12 degrees, sampled straight at one of
# these sizes by bilinear or bicubic interpolation. The real class must hold such pictures: the
# procedural generator's face swaps warp faces the same way, and a detector that never saw a
# real aligned face learns "an aligned face is a swap".
_FACE_CHIP_SHARE = 0.2
_FACE_CHIP_SIDES = (112, 128, 150, 160, 200, 256)
# Another share is the face framed whole at the photograph's own pixels (a portrait, a profile
# upload cut by hand): a crop of the chain's other kind seldom holds a whole face (in the f17
# experiment, 14 of 304 real validation stills held one at least 64 px wide), while the
# pictures of people a platform receives mostly do.
_PORTRAIT_SHARE = 0.3
_PORTRAIT_WIDTHS = (2.0, 4.0)  # face widths the window spans
_PORTRAIT_MAX_SIDE = 1080  # px: a larger window is shrunk to 480 px up to this


@dataclasses.dataclass(frozen=True)
class SourceItem:
    """One upload to make: its media type and what goes into it."""

    content_id: str
    media_type: str
    label: str
    sources: dict[str, str]  # modality -> source name
    audio_files: tuple[str, ...] = ()  # recordings joined in order (speech items, video tracks)
    speech: SpeechRequest | None = None  # or a synthesised utterance (by `synth_source`)
    synth_source: str | None = None
    generation: ImageRequest | None = None  # or a picture or clip a generator makes (`sources["visual"]`)
    image_file: str | None = None
    video_file: str | None = None
    start_s: float = 0.0
    as_is: bool = False  # held out: the file as made elsewhere


def _rng(seed: int, *keys: int | str) -> np.random.Generator:
    """The draws of one (seed, keys): a text key counts whole, by its hash, so two keys that share
    their first characters (an item id and the next, two sources named alike) draw apart."""
    return np.random.default_rng(
        [
            seed,
            *(
                k if isinstance(k, int) else int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big")
                for k in keys
            ),
        ]
    )


def _choice(rng: np.random.Generator, options: Sequence[tuple[Any, float]]) -> Any:
    values, weights = zip(*options)
    weights = np.asarray(weights) / np.sum(weights)
    return values[int(rng.choice(len(values), p=weights))]


# ----------------------------------------------------------------------------------------------
# Reading what the packages ship.


def decode_audio_file(path: str | Path, source_name: str = "") -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate, from any container FFmpeg reads, headerless raw
    PCM (s16le, the source's rate) or raw GSM."""
    path = Path(path)
    if path.suffix == ".raw":
        samples = np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
        return samples, _HEADERLESS_RATES.get(source_name, 8000)
    options = {"format": "gsm"} if path.suffix == ".gsm" else {}
    chunks, rate = [], None
    with av.open(str(path), metadata_errors="ignore", **options) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono")
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                rate = out.sample_rate
                chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        raise ValueError(f"{path}: no audio decoded")
    return np.concatenate(chunks).astype(np.float32), int(rate)


def _duration_s(path: Path, source_name: str) -> float:
    if path.suffix == ".raw":
        return path.stat().st_size / 2 / _HEADERLESS_RATES.get(source_name, 8000)
    if path.suffix == ".gsm":
        return path.stat().st_size / 33 * 160 / 8000
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return float(container.duration or 0) / av.time_base
    except (av.FFmpegError, IndexError):
        return 0.0


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return samples
    from scipy.signal import resample_poly

    g = math.gcd(rate, target)
    return resample_poly(samples, target // g, rate // g).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Planning the items.


def _speech_items(source: Source, cache: Path, seed: int, limit: int, held_out: bool) -> list[SourceItem]:
    """Recordings joined (short clips of one speaker: one directory, or one file name where the
    source says so) or cut to 2-8 s utterances; held out, each file is an item of its own."""
    files = media_files(source, cache)
    rng = _rng(seed, "plan", source.name)
    if held_out:
        chosen = sorted(rng.choice(len(files), size=min(limit, len(files)), replace=False).tolist())
        return [SourceItem(f"{source.name}-{i:05d}", "audio", source.label, {"audio": source.name},
                           audio_files=(str(files[j]),), as_is=True) for i, j in enumerate(chosen)]  # fmt: skip
    by_speaker: dict[str, list[Path]] = {}
    for path in files:
        by_speaker.setdefault(str(path.parent if source.speaker_from == "directory" else path.name), []).append(path)
    groups: list[tuple[str, ...]] = []
    for speaker in sorted(by_speaker):
        pending, total = [], 0.0
        target = rng.uniform(*_UTTERANCE_S)
        for path in by_speaker[speaker]:
            pending.append(str(path))
            total += _duration_s(path, source.name)
            if total >= target:
                groups.append(tuple(pending))
                pending, total, target = [], 0.0, rng.uniform(*_UTTERANCE_S)
    order = rng.permutation(len(groups))[:limit]
    return [SourceItem(f"{source.name}-{i:05d}", "audio", "real", {"audio": source.name}, audio_files=groups[j])
            for i, j in enumerate(sorted(order.tolist()))]  # fmt: skip


def _synth_items(source: Source, cache: Path, seed: int, per_voice: int, held_out: bool) -> list[SourceItem]:
    rng = _rng(seed, "plan", source.name)
    items = []
    for voice, language in voice_languages(source).items():
        lines = sentences(cache, source, language)
        picks = rng.choice(len(lines), size=min(per_voice, len(lines)), replace=False)
        for j in picks:
            text = lines[int(j)]
            if rng.random() < 0.35:  # two lines, as a voice message says more than one thing
                text = f"{text} {lines[int(rng.integers(len(lines)))]}"
            request = SpeechRequest(
                voice, text, rate=float(rng.uniform(0.85, 1.2)), pitch=float(rng.uniform(0.85, 1.2))
            )
            items.append(SourceItem(f"{source.name}-{len(items):05d}", "audio", "synthetic", {"audio": source.name},
                                    speech=request, synth_source=source.name, as_is=held_out))  # fmt: skip
    return items


def _photo_items(source: Source, cache: Path, seed: int, held_out: bool) -> list[SourceItem]:
    if held_out:  # each photograph uploaded as its package ships it
        return [SourceItem(f"{source.name}-{i:05d}", "image", "real", {"visual": source.name}, image_file=str(path),
                           as_is=True) for i, path in enumerate(media_files(source, cache))]  # fmt: skip
    return [
        SourceItem(f"{source.name}-{i * PHOTO_VARIANTS + k:05d}", "image", "real", {"visual": source.name},
                   image_file=str(path))
        for i, path in enumerate(media_files(source, cache)) for k in range(PHOTO_VARIANTS)
    ]  # fmt: skip


def _generated_items(
    source: Source, cache: Path, seed: int, photos: Sequence[Path], held_out: bool
) -> list[SourceItem]:
    """A generator's uploads: the held-out generator's faces (stills and clips, as made), or
    a re-drawing generator's version of every training photograph, uploaded REDRAW_VARIANTS
    ways through the platform chain."""
    if held_out:
        stills = [SourceItem(f"{source.name}-{i:05d}", "image", "synthetic", {"visual": source.name},
                             generation=ImageRequest(seed * 100_000 + i), as_is=True)
                  for i in range(HELDOUT_FACE_STILLS)]  # fmt: skip
        clips = [SourceItem(f"{source.name}-clip-{i:05d}", "video", "synthetic", {"visual": source.name},
                            generation=ImageRequest(seed * 100_000 + 50_000 + i, frames=HELDOUT_CLIP_FRAMES), as_is=True)
                 for i in range(HELDOUT_FACE_CLIPS)]  # fmt: skip
        return stills + clips
    variants = REDRAW_VARIANTS
    if source.name.startswith("autoencoder_"):
        # The four encoder-decoders share the photographs out (each re-draws every fourth),
        # each re-drawing uploaded twice as many ways.
        turn = AUTOENCODER_VARIANTS.index(source.name.removeprefix("autoencoder_"))
        photos, variants = photos[turn :: len(AUTOENCODER_VARIANTS)], REDRAW_VARIANTS * 2
    return [
        SourceItem(f"{source.name}-{i * variants + k:05d}", "image", "synthetic", {"visual": source.name},
                   generation=ImageRequest(seed, input_file=str(path)))
        for i, path in enumerate(photos) for k in range(variants)
    ]  # fmt: skip


def _segment_starts(path: Path) -> tuple[np.ndarray, float]:
    """Where a film's segments start (one every 4.5 s, each room for the longest), and its frame rate."""
    with av.open(str(path)) as container:
        length = float(container.duration or 0) / av.time_base
        rate = float(container.streams.video[0].average_rate or 15)
    return np.arange(0.0, max(length - VIDEO_SEGMENT_S[1], 0.0), VIDEO_SEGMENT_S[1] + 0.5), rate


def _still_items(source: Source, cache: Path) -> list[SourceItem]:
    """A film's frames uploaded as photographs are (a screenshot, a frame kept as a profile
    picture): the first frame of each segment the video sources cut, so a still lands in the
    split group of the segment it opens and no model is tested on a frame it trained on."""
    starts = [(path, float(start)) for path in media_files(source, cache) for start in _segment_starts(path)[0]]
    return [
        SourceItem(f"{source.name}-{i * STILL_VARIANTS + k:05d}", "image", "real", {"visual": source.name},
                   video_file=str(path), start_s=start)
        for i, (path, start) in enumerate(starts) for k in range(STILL_VARIANTS)
    ]  # fmt: skip


def _video_items(source: Source, cache: Path, seed: int, tracks: list[SourceItem]) -> list[SourceItem]:
    """Segments of each film, each with a speech track drawn from the training speech items:
    a human voice (a real video) or a synthesiser's (a dubbed one, synthetic). A source that a
    generator re-draws asks it for each segment's frames (shared by the segment's uploads),
    and its uploads are synthetic whatever their voice."""
    rng = _rng(seed, "plan", source.name)
    items = []
    for path in media_files(source, cache):
        starts, rate = _segment_starts(path)
        if len(starts) and not tracks:
            raise ValueError(f"{source.name}: no voices to give its clips (no speech item was planned)")
        for start in starts:
            redrawing = (
                ImageRequest(seed, frames=int(np.ceil(VIDEO_SEGMENT_S[1] * rate)) + 1, input_file=str(path),
                             start_s=float(start))
                if source.redrawn_by
                else None
            )  # fmt: skip
            for _ in range(VIDEO_VARIANTS):
                track = tracks[int(rng.integers(len(tracks)))]
                items.append(dataclasses.replace(
                    track, content_id=f"{source.name}-{len(items):05d}", media_type="video",
                    label="synthetic" if redrawing else track.label, sources={"visual": source.name, **track.sources},
                    video_file=str(path), start_s=float(start), generation=redrawing,
                ))  # fmt: skip
    return items


def _human_voices(cache: Path, seed: int) -> list[SourceItem]:
    """The training role's human speech items: a video source's voices when the build makes
    no speech items of its own."""
    return [item for source in sources_for("train") if source.kind == "speech"
            for item in _speech_items(source, cache, seed, SPEECH_ITEMS, False)]  # fmt: skip


def plan_items(sources: Sequence[Source], cache: Path, seed: int, held_out: bool) -> list[SourceItem]:
    items: list[SourceItem] = []
    speech_tracks: list[SourceItem] = []
    # What re-drawing generators re-draw: every training photograph, whichever sources this
    # build makes items of (the generators' corpus can be built apart from the photographs').
    redrawing = any(s.kind == "generator" for s in sources) and not held_out
    photos = training_photographs(cache) if redrawing else []
    for source in sources:
        if source.kind == "speech":
            planned = _speech_items(source, cache, seed, HELDOUT_SPEECH_ITEMS if held_out else SPEECH_ITEMS, held_out)
        elif source.kind == "synthesiser":
            planned = _synth_items(source, cache, seed, SYNTH_ITEMS_PER_VOICE.get(source.name, 50), held_out)
        elif source.kind == "photo":
            planned = _photo_items(source, cache, seed, held_out)
        elif source.kind == "generator":
            planned = _generated_items(source, cache, seed, photos, held_out)
        elif source.kind == "still" and not held_out:
            planned = _still_items(source, cache)
        else:
            continue
        items += planned
        if source.kind in ("speech", "synthesiser"):
            speech_tracks += planned
    for source in sources:
        if source.kind == "video" and not held_out:
            # the dubs draw their voices from the same pool, so hold both out together
            items += _video_items(source, cache, seed, speech_tracks or _human_voices(cache, seed))
    return items


# ----------------------------------------------------------------------------------------------
# Making the media.


def _round_trip(samples: np.ndarray, rate: int, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A lossy encode and decode, in memory, as a recording passes through apps and calls."""
    if kind == "none":
        return samples, rate
    if kind == "telephony":
        narrow = _resample(samples, rate, 8000)
        return _codec_round_trip(narrow, 8000, "wav", "pcm_mulaw", None), 8000
    codec, container, bit_rate, codec_rate = {
        "mp3": ("libmp3lame", "mp3", int(rng.choice([32000, 64000, 128000])), None),
        "aac": ("aac", "adts", int(rng.choice([32000, 64000, 96000])), None),
        "opus": ("libopus", "ogg", int(rng.choice([16000, 24000, 48000])), 48000),
        "vorbis": ("vorbis", "ogg", int(rng.choice([48000, 96000])), 44100),
    }[kind]
    work_rate = codec_rate or (rate if rate in (16000, 22050, 24000, 32000, 44100, 48000) else 44100)
    decoded = _codec_round_trip(_resample(samples, rate, work_rate), work_rate, container, codec, bit_rate)
    return decoded, work_rate


def _codec_round_trip(samples: np.ndarray, rate: int, container: str, codec: str, bit_rate: int | None) -> np.ndarray:
    buffer = io.BytesIO()
    # FFmpeg's own Vorbis encoder (the bundled build has no libvorbis) is stereo-only and experimental.
    layout = "stereo" if codec == "vorbis" else "mono"
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate)
        stream.layout = layout
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "-2"}
        if bit_rate:
            stream.bit_rate = bit_rate
        planes = np.repeat(samples[None, :], 2 if layout == "stereo" else 1, axis=0)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes, np.float32), format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = 0
        output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    buffer.seek(0)
    chunks = []
    with av.open(buffer) as source:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for decoded in source.decode(audio=0):
            chunks += [c.to_ndarray().reshape(-1) for c in resampler.resample(decoded)]
    out = np.concatenate(chunks) if chunks else np.zeros(1, np.float32)
    return out[: len(samples)].astype(np.float32)


def _speech_samples(item: SourceItem, synthesised: dict[str, str], rng: np.random.Generator) -> tuple[np.ndarray, int]:
    if item.speech is not None:
        if item.content_id not in synthesised:
            raise ValueError(f"the {item.synth_source} voice {item.speech.voice} could not say {item.speech.text!r}")
        return decode_audio_file(synthesised[item.content_id])
    pieces, rate = [], None
    for path in item.audio_files:
        samples, file_rate = decode_audio_file(path, item.sources["audio"])
        rate = rate or file_rate
        pieces.append(_resample(samples, file_rate, rate))
        pieces.append(np.zeros(int(rate * rng.uniform(0.15, 0.6)), np.float32))  # a pause between takes
    samples = np.concatenate(pieces[:-1]) if len(pieces) > 1 else pieces[0]
    if len(samples) > _UTTERANCE_S[1] * rate:  # a long take: a stretch of it
        length = int(rng.uniform(*_UTTERANCE_S) * rate)
        start = int(rng.integers(0, len(samples) - length))
        samples = samples[start : start + length]
    return samples, int(rate)


def _platform_audio(samples: np.ndarray, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The chain every training speech item passes, real or synthetic alike."""
    samples, rate = _round_trip(samples, rate, _choice(rng, _ROUND_TRIPS), rng)
    target = int(_choice(rng, _RATES))
    if rate == 8000 and target > 8000 and rng.random() < 0.5:
        target = 8000  # a call recording stays narrow-band
    samples = _resample(samples, rate, target)
    peak = float(np.abs(samples).max()) + 1e-9
    return (samples / peak * 10 ** (-rng.uniform(1, 12) / 20)).astype(np.float32), target


def _make_audio(item: SourceItem, out: Path, synthesised: dict[str, str], seed: int) -> str:
    rng = _rng(seed, "make", item.content_id)
    if item.as_is:
        if item.speech is not None and item.content_id not in synthesised:
            raise ValueError(f"the {item.synth_source} voice {item.speech.voice} could not say {item.speech.text!r}")
        source = Path(synthesised.get(item.content_id) or item.audio_files[0])
        if source.suffix in (".raw", ".gsm"):  # headerless: wrapped in WAV, nothing else changed
            samples, rate = decode_audio_file(source, item.sources["audio"])
            name = f"{item.content_id}.wav"
            write_audio(out / name, "wav", samples, rate, {}, rng)
        else:
            name = f"{item.content_id}{source.suffix}"
            (out / name).write_bytes(source.read_bytes())
        return name
    samples, rate = _platform_audio(*_speech_samples(item, synthesised, rng), rng)
    container = _choice(rng, _AUDIO_CONTAINERS)
    if container == "ogg":
        samples, rate = _resample(samples, rate, 48000), 48000  # Opus runs at 48 kHz
    name = f"{item.content_id}.{ {'m4a': 'm4a'}.get(container, container) }"
    write_audio(out / name, container, samples, rate, {}, rng)
    return name


def _upright(path: str) -> tuple[Image.Image, Image.Exif]:
    with Image.open(path) as image:
        exif = image.getexif()
        return ImageOps.exif_transpose(image).convert("RGB"), exif


def shrink(image: Image.Image, size: tuple[int, int], how: str) -> Image.Image:
    """`image` scaled down to `size` by one of the `_SHRINKERS`."""
    if how == "lanczos":
        return image.resize(size, Image.Resampling.LANCZOS)
    if how == "bicubic":
        return image.resize(size, Image.Resampling.BICUBIC)
    interpolation = {"area": cv2.INTER_AREA, "bilinear_unfiltered": cv2.INTER_LINEAR}[how]
    return Image.fromarray(cv2.resize(np.asarray(image), size, interpolation=interpolation))


def _crop_and_scale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    # Mostly the generator's size range (long side 200-480), some larger; half the items
    # keep native pixels (a crop), half are scaled down first (a thumbnail, a re-share).
    long_side = int(rng.uniform(200, 480) if rng.random() < 0.75 else rng.uniform(480, 1080))
    if rng.random() < 0.5:
        scale = min(1.0, long_side / max(width, height) * rng.uniform(1.0, 2.5))
        size = (max(16, round(width * scale)), max(16, round(height * scale)))
        image = shrink(image, size, _choice(rng, _SHRINKERS)) if scale < 1.0 else image
        width, height = image.size
    aspect = float(rng.choice([4 / 3, 16 / 9, 3 / 2, 1.0]))
    crop_w = min(width, long_side)
    crop_h = min(height, max(16, round(crop_w / aspect)))
    left = int(rng.integers(0, width - crop_w + 1))
    top = int(rng.integers(0, height - crop_h + 1))
    return image.crop((left, top, left + crop_w, top + crop_h))


def face_chip(image: Image.Image, box: FaceBox, rng: np.random.Generator) -> Image.Image | None:
    """The picture's face `box` as a face-chip extractor cuts a profile picture: a square
    1.4-2.2 face-widths wide around it, turned up to 12 degrees, sampled straight at one of
    `_FACE_CHIP_SIDES` px (bilinear or bicubic, no low-pass filter first); None when the square
    would leave the picture."""
    frame = np.asarray(image)
    x, y, w, h = box
    side = int(rng.choice(_FACE_CHIP_SIDES))
    span = max(w, h) * rng.uniform(1.4, 2.2)
    turn = np.deg2rad(rng.uniform(-12, 12))
    # The map from chip pixels to picture pixels: scaled, turned, centred on the face.
    scale = span / side
    a, b = scale * np.cos(turn), -scale * np.sin(turn)
    cx, cy = x + w / 2, y + h / 2
    c, f = cx - (a + b) * side / 2, cy - (a - b) * side / 2
    corners = [(a * u + b * v + c, -b * u + a * v + f) for u in (0, side) for v in (0, side)]
    if not all(0 <= px <= frame.shape[1] - 1 and 0 <= py <= frame.shape[0] - 1 for px, py in corners):
        return None
    interpolation = cv2.INTER_LINEAR if rng.random() < 0.7 else cv2.INTER_CUBIC
    chip = cv2.warpAffine(frame, np.float32([[a, b, c], [-b, a, f]]), (side, side),
                          flags=interpolation | cv2.WARP_INVERSE_MAP)  # fmt: skip
    return Image.fromarray(chip)


def portrait(image: Image.Image, box: FaceBox, rng: np.random.Generator) -> Image.Image | None:
    """The face `box` framed whole at the picture's own pixels, as a portrait or a profile upload
    is cut by hand: a window `_PORTRAIT_WIDTHS` face widths wide (square or 4:5), the face off
    its centre by up to a quarter of its width, kept inside the picture; a window longer than
    `_PORTRAIT_MAX_SIDE` is shrunk to 480 px up to that. None when the picture cannot hold a
    window one and a half face widths wide."""
    x, y, w, h = box
    width, height = image.size
    span = max(w, h) * rng.uniform(*_PORTRAIT_WIDTHS)
    crop_w = min(width, round(span))
    crop_h = min(height, round(span * float(rng.choice([1.0, 1.25]))))
    if crop_w < 1.5 * w or crop_h < 1.5 * h:
        return None
    cx, cy = x + w / 2 + rng.uniform(-0.25, 0.25) * w, y + h / 2 + rng.uniform(-0.25, 0.25) * h
    left = int(np.clip(round(cx - crop_w / 2), 0, width - crop_w))
    top = int(np.clip(round(cy - crop_h / 2), 0, height - crop_h))
    window = image.crop((left, top, left + crop_w, top + crop_h))
    if max(window.size) > _PORTRAIT_MAX_SIDE:
        scale = rng.uniform(480, _PORTRAIT_MAX_SIDE) / max(window.size)
        size = (max(16, round(window.width * scale)), max(16, round(window.height * scale)))
        window = shrink(window, size, _choice(rng, _SHRINKERS))
    return window


def _upload_cut(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """What of a photograph one still upload shows: in `_FACE_CHIP_SHARE` of the uploads its
    face chip, in `_PORTRAIT_SHARE` its face framed whole (when it has a face the cut fits),
    else a crop or a thumbnail."""
    draw = rng.random()
    if draw < _FACE_CHIP_SHARE + _PORTRAIT_SHARE:
        box = detect_face(np.asarray(image))
        if box is not None:
            cut = face_chip(image, box, rng) if draw < _FACE_CHIP_SHARE else portrait(image, box, rng)
            if cut is not None:
                return cut
    return _crop_and_scale(image, rng)


def _make_image(item: SourceItem, out: Path, seed: int, generated: dict[str, list[str]]) -> str:
    rng = _rng(seed, "make", item.content_id)
    if item.generation is not None:
        if item.content_id not in generated:
            raise ValueError(f"the {item.sources['visual']} generator made nothing for {item.content_id}")
        if item.as_is:  # held out: the PNG as the generator wrote it, or its export as a JPEG
            with Image.open(generated[item.content_id][0]) as picture:
                if int(item.content_id.rsplit("-", 1)[1]) % 2:
                    name = f"{item.content_id}.jpg"
                    picture.convert("RGB").save(out / name, "JPEG", quality=92)
                else:
                    name = f"{item.content_id}.png"
                    picture.save(out / name, "PNG")
            return name
        item = dataclasses.replace(item, image_file=generated[item.content_id][0])
    if item.as_is:
        name = f"{item.content_id}{Path(item.image_file).suffix.lower()}"
        (out / name).write_bytes(Path(item.image_file).read_bytes())
        return name
    if item.video_file:  # a still of a film
        frames = video_frames(item.video_file, item.start_s, 1)
        if not frames:
            raise ValueError(f"{item.video_file} has no frame after {item.start_s:.1f} s")
        image, exif = Image.fromarray(frames[0]), Image.Exif()
    else:
        image, exif = _upright(item.image_file)
    image = _upload_cut(image, rng)
    container = _choice(rng, _IMAGE_CONTAINERS)
    options: dict[str, Any] = {}
    if exif and rng.random() < _KEEP_EXIF_SHARE:
        exif.pop(0x0112, None)  # the pixels are upright now
        options["exif"] = exif
    name = f"{item.content_id}.{ {'jpeg': 'jpg'}.get(container, container) }"
    if container == "jpeg":
        image.save(out / name, "JPEG", quality=int(rng.integers(65, 97)), **options)
    elif container == "webp":
        image.save(out / name, "WEBP", quality=int(rng.integers(60, 92)), method=4, **options)
    else:
        image.save(out / name, "PNG", **options)
    return name


def _make_video(
    item: SourceItem, out: Path, synthesised: dict[str, str], seed: int, generated: dict[str, list[str]]
) -> str:
    rng = _rng(seed, "make", item.content_id)
    duration = rng.uniform(*VIDEO_SEGMENT_S)
    with av.open(item.video_file) as container:
        fps = float(container.streams.video[0].average_rate or 15)
    count = max(1, round(duration * fps))
    if item.generation is not None:  # the segment as the generator re-drew it
        if item.content_id not in generated:
            raise ValueError(f"the {item.sources['visual']} generator made nothing for {item.content_id}")
        frames = [np.asarray(Image.open(path).convert("RGB")) for path in generated[item.content_id][:count]]
    else:
        frames = video_frames(item.video_file, item.start_s, count)
    if not frames:
        raise ValueError(f"{item.video_file} has no frame after {item.start_s:.1f} s")
    height, width = frames[0].shape[:2]
    long_side = int(rng.uniform(160, 384))
    scale = min(1.0, long_side / max(width, height) * rng.uniform(1.0, 1.6))
    size = (max(16, round(width * scale / 2) * 2), max(16, round(height * scale / 2) * 2))
    crop = (min(size[0], long_side) // 2 * 2, min(size[1], long_side) // 2 * 2)
    left, top = int(rng.integers(0, size[0] - crop[0] + 1)), int(rng.integers(0, size[1] - crop[1] + 1))
    pictures = [np.asarray(Image.fromarray(f).resize(size, Image.Resampling.LANCZOS))[top : top + crop[1], left : left + crop[0]]
                for f in frames]  # fmt: skip
    container = _choice(rng, _VIDEO_CONTAINERS)
    samples, rate = _platform_audio(*_speech_samples(item, synthesised, rng), rng)
    audio_rate = 48000 if container == "webm" else int(rng.choice([16000, 22050, 44100, 48000]))
    samples = _resample(samples, rate, audio_rate)
    length = int(len(pictures) / fps * audio_rate)
    samples = np.pad(samples, (0, max(0, length - len(samples))))[:length]
    name = f"{item.content_id}.{container}"
    write_video(out / name, container, pictures, crop, round(fps), samples, audio_rate, {}, rng)
    return name


def _make_clip(item: SourceItem, out: Path, generated: dict[str, list[str]]) -> str:
    """A held-out generator's clip as its maker would post it: H.264 in MP4, no sound."""
    frames = [np.asarray(Image.open(path).convert("RGB")) for path in generated[item.content_id]]
    height, width = frames[0].shape[:2]
    name = f"{item.content_id}.mp4"
    with av.open(str(out / name), "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=HELDOUT_CLIP_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20", "preset": "superfast", "threads": "1"}
        for index, picture in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return name


def _make(
    item: SourceItem, out: Path, synthesised: dict[str, str], seed: int, generated: dict[str, list[str]]
) -> tuple[str, str | None]:
    try:
        if item.media_type == "image":
            return item.content_id, _make_image(item, out, seed, generated)
        if item.media_type == "video" and item.as_is:
            return item.content_id, _make_clip(item, out, generated)
        if item.media_type == "video":
            return item.content_id, _make_video(item, out, synthesised, seed, generated)
        return item.content_id, _make_audio(item, out, synthesised, seed)
    except (av.FFmpegError, OSError, ValueError) as exc:
        print(f"skipped {item.content_id}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return item.content_id, None


def _synthesise_all(items: Sequence[SourceItem], cache: Path, workdir: Path) -> dict[str, str]:
    by_source: dict[str, list[SourceItem]] = {}
    for item in items:
        if item.speech is not None:
            by_source.setdefault(item.synth_source, []).append(item)
    paths: dict[str, str] = {}
    for name, group in by_source.items():
        started = time.perf_counter()
        written = synthesise(BY_NAME[name], cache, [i.speech for i in group], workdir / name)
        paths.update({item.content_id: str(path) for item, path in zip(group, written) if path is not None})
        print(f"synthesised {len(group)} utterances with {name} in {time.perf_counter() - started:.0f}s",
              file=sys.stderr)  # fmt: skip
    return paths


def _generate_all(items: Sequence[SourceItem], cache: Path, workdir: Path) -> dict[str, list[str]]:
    by_source: dict[str, list[SourceItem]] = {}
    for item in items:
        if item.generation is not None:
            by_source.setdefault(item.sources["visual"], []).append(item)
    paths: dict[str, list[str]] = {}
    for name, group in by_source.items():
        started = time.perf_counter()
        # Items that re-draw the same photograph share one re-drawing (uploaded differently).
        requests = list(dict.fromkeys(i.generation for i in group))
        generator = BY_NAME[BY_NAME[name].redrawn_by or name]
        written = dict(zip(requests, generate(generator, cache, requests, workdir / name)))
        paths.update({item.content_id: [str(p) for p in written[item.generation]] for item in group})
        print(f"generated {len(requests)} pictures with {name} in {time.perf_counter() - started:.0f}s",
              file=sys.stderr)  # fmt: skip
    return paths


def _origins(item: SourceItem) -> list[str]:
    """What an item is made from besides itself: the photograph (as itself or re-drawn), the
    film segment (as filmed or re-drawn), the recordings or the synthesised utterance."""
    origins = [f"file:{content_digest(f)}" for f in (item.image_file, *item.audio_files) if f]
    if item.video_file:
        origins.append(f"segment:{content_digest(item.video_file)}@{item.start_s:.2f}")
    if item.generation is not None and item.generation.input_file and item.generation.frames == 1:
        origins.append(f"file:{content_digest(item.generation.input_file)}")
    if item.speech is not None:
        origins.append(f"speech:{item.synth_source}:{item.speech.voice}:{item.speech.text}")
    return origins


def split_groups(items: Sequence[SourceItem]) -> dict[str, str]:
    """Each item's split group: items that share an origin (a photograph's variants and its
    re-drawings, a segment's uploads, a recording used alone and as a clip's voice) form one
    group and land in one split, so no model is tested on the photograph it trained on. A
    group is named by its least origin, files by their content, so separate builds agree."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for item in items:
        for origin in _origins(item):
            a, b = root(f"item:{item.content_id}"), root(origin)
            parent[max(a, b)] = min(a, b)  # the least key of a group is its root
    groups = {}
    for item in items:
        top = root(f"item:{item.content_id}")
        groups[item.content_id] = (
            top if top.startswith("item:") else "origin:" + hashlib.sha256(top.encode()).hexdigest()[:16]
        )
    return groups


def _build_groups(items: Sequence[SourceItem], sources: Sequence[Source], cache: Path, seed: int) -> dict[str, str]:
    """The split groups of a build's items. A still source's films are planned beside them as
    the real video source that cuts the same films plans them (not made): a still is then
    grouped, and its group named, as the segment it opens is in that source's own build, so the
    two land in one split."""
    films = {pattern for source in sources if source.kind == "still" for pattern in source.files}
    built = {source.name for source in sources}
    cutting = [source for source in sources_for("train") if source.kind == "video" and not source.redrawn_by
               and source.name not in built and films & set(source.files)]  # fmt: skip
    groups = split_groups([*items, *plan_items(cutting, cache, seed, held_out=False)])
    return {item.content_id: groups[item.content_id] for item in items}


def _labels_row(item: SourceItem) -> dict[str, Any]:
    synthetic_audio = item.sources.get("audio") if item.speech is not None else None
    synthetic_visual = item.sources.get("visual") if item.generation is not None else None
    has_visual = item.media_type in ("video", "image")
    has_audio = item.media_type in ("video", "audio")
    return {
        "content_id": item.content_id,
        "label": item.label,
        "visual_label": (1 if synthetic_visual else 0) if has_visual else None,
        "audio_label": (1 if synthetic_audio else 0) if has_audio else None,
        "metadata_label": 0,
        "families": {"visual": synthetic_visual, "audio": synthetic_audio, "metadata": None},
        "media_type": item.media_type,
        "container": None,
        "file_metadata_stripped": False,
        "source": "+".join(sorted(set(item.sources.values()))),
        "sources": item.sources,
    }


def build(
    out_dir: str | Path, role: str, cache: str | Path = DEFAULT_CACHE, seed: int = 1, names: Sequence[str] = (),
    workers: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """Writes the corpus of a role's sources; returns counts by source and label."""
    cache, out = Path(cache), Path(out_dir)
    held_out = role == "heldout"
    sources = sources_for(role, names)
    unfetched = [s.name for s in sources if s.files and not media_files(s, cache)]
    if unfetched:
        raise ValueError(f"no media found for {unfetched} under {cache}: python -m training.sources fetch "
                         + " ".join(f"--source {name}" for name in unfetched) + f" --cache {cache}")  # fmt: skip
    items = plan_items(sources, cache, seed, held_out)
    media = out / "media"
    media.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="synth-") as scratch:
        synthesised = _synthesise_all(items, cache, Path(scratch))
        generated = _generate_all(items, cache, Path(scratch))
        make = functools.partial(_make, out=media, synthesised=synthesised, seed=seed, generated=generated)
        if workers > 1:
            with multiprocessing.get_context("forkserver").Pool(workers) as pool:  # see training.corpus.generate
                made = dict(pool.map(make, items, chunksize=4))
        else:
            made = dict(map(make, items))
    accounts, weights = account_pool(seed)
    groups = _build_groups(items, sources, cache, seed)
    rows = []
    for index, item in enumerate(items):
        if made[item.content_id] is None:
            continue
        # The event draws from the item's own streams in the generator's namespace, offset so
        # no source item shares a stream with a generated one.
        container = {"jpg": "jpeg"}.get(Path(made[item.content_id]).suffix.lstrip("."), "")
        container = container or Path(made[item.content_id]).suffix.lstrip(".")
        plan = ItemPlan(10_000_000 + index, item.content_id, item.media_type, container,
                        item.sources.get("visual") if item.generation is not None else None,
                        item.sources.get("audio") if item.speech is not None else None, None)  # fmt: skip
        event = upload_event(seed, plan, accounts, weights, declared_ai=False)
        event["media_uri"] = f"media/{made[item.content_id]}"
        label = _labels_row(item) | {"container": container, "split_group": groups[item.content_id]}
        rows.append((event["uploaded_at"], item.content_id, event, label))
    rows.sort(key=lambda row: (row[0], row[1]))
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as manifest:
        manifest.writelines(json.dumps(row[2], sort_keys=True, ensure_ascii=False) + "\n" for row in rows)
    with open(out / "labels.jsonl", "w", encoding="utf-8") as labels:
        labels.writelines(json.dumps(row[3], sort_keys=True) + "\n" for row in rows)
    counts = Counter((row[3]["source"], row[3]["label"]) for row in rows)
    return {"out_dir": str(out), "items": len(rows), "planned": len(items),
            "by_source": {f"{s}/{label}": n for (s, label), n in sorted(counts.items())}}  # fmt: skip


def relabel(
    out_dir: str | Path, role: str, cache: str | Path = DEFAULT_CACHE, seed: int = 1, names: Sequence[str] = ()
) -> int:
    """Adds split groups to the labels of a corpus made before them, re-planning its items as
    its build did (`names`: the build's sources; none: the sources its labels name, in their
    declared order), from `seed` and `cache`; returns the rows relabelled.

    Raises:
        ValueError: the re-planned items are not the ones the corpus was made of (another seed,
            cache or set of sources).
    """
    path = Path(out_dir) / "labels.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    named = {name for row in rows for name in (row.get("sources") or {}).values()}
    sources = sources_for(role, names) if names else [s for s in sources_for("all") if s.name in named]
    items = plan_items(sources, Path(cache), seed, role == "heldout")
    planned = {item.content_id: item for item in items}
    groups = _build_groups(items, sources, Path(cache), seed)
    for row in rows:
        item = planned.get(row["content_id"])
        expected = _labels_row(item) if item is not None else {}
        if any(expected.get(key) != row.get(key) for key in ("label", "media_type", "source", "sources")):
            raise ValueError(f"{path}: {row['content_id']} is not re-planned as it was made (another seed, cache "
                             "or set of sources)")  # fmt: skip
        row["split_group"] = groups[row["content_id"]]
    path.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows), encoding="utf-8")
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.source_corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--source", action="append", default=[], help="Only these sources (repeatable).")
    parser.add_argument("--cache", default=os.environ.get("SOURCES_CACHE", DEFAULT_CACHE))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--relabel", action="store_true",
                        help="Add split groups to the labels of a corpus made before them (its media are kept).")  # fmt: skip
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.relabel:
        try:
            count = relabel(args.out, args.role, args.cache, args.seed, args.source)
        except (OSError, ValueError) as exc:
            parser.error(str(exc))
        print(f"split groups added to {count} labels in {args.out}", file=sys.stderr)
        return 0
    try:
        summary = build(args.out, args.role, args.cache, args.seed, args.source, args.workers)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"source corpus: {summary['items']} of {summary['planned']} items in {time.perf_counter() - started:.0f}s "
          f"-> {summary['out_dir']}: {summary['by_source']}", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
