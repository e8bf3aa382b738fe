"""Media decoding shared by the feature extractors: images (Pillow), video and audio (PyAV).

The media type comes from the bytes, never from the file name or the upload event: an
uploader can name anything `.jpg`. Every decoder raises `MediaRejected` subclasses with a
stable reason, so a broken file becomes a dead-letter row that says why.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from typing import NamedTuple

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from transforms.limits import CorruptMedia, Deadline, MediaLimits, MediaRejected, UnsupportedMedia

IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})


def open_image(data: bytes, limits: MediaLimits) -> Image.Image | None:
    """Opens `data` as an image (header only, no pixel decode), or None if it is not one.

    Raises:
        LimitExceeded: the image has more pixels than allowed (checked before decoding, so a
            decompression bomb is never expanded).
        UnsupportedMedia: an image format the detector does not take.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError as exc:
        raise MediaRejected(str(exc), reason="limit_exceeded") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptMedia(f"image header is unreadable: {exc}") from exc
    if image.format not in IMAGE_FORMATS:
        raise UnsupportedMedia(f"image format {image.format} is not supported")
    limits.check_pixels(*image.size)
    return image


def image_frame_count(image: Image.Image) -> int:
    return int(getattr(image, "n_frames", 1) or 1)


def decode_image_frames(image: Image.Image, max_frames: int) -> list[np.ndarray]:
    """RGB frames of a still (one) or an animation (up to `max_frames`, evenly spaced)."""
    total = image_frame_count(image)
    indices = evenly_spaced(total, max_frames)
    frames = []
    try:
        for index in indices:
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise CorruptMedia(f"image data is truncated or corrupt: {exc}") from exc
    return frames


def evenly_spaced(total: int, count: int) -> list[int]:
    """`count` indices spread across `range(total)`, first and last included when possible."""
    if total <= 0:
        return []
    if total <= count:
        return list(range(total))
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)}) if count > 1 else [0]


@contextlib.contextmanager
def open_container(data: bytes) -> Iterator[av.container.InputContainer]:
    """Opens media bytes with FFmpeg; a file FFmpeg cannot parse is `CorruptMedia`."""
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except av.error.FFmpegError as exc:
        raise CorruptMedia(f"not a decodable media container: {exc}") from exc
    try:
        yield container
    finally:
        container.close()


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first real video stream; cover art in an audio file (attached picture) is not one."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    return container.streams.audio[0] if container.streams.audio else None


def stream_duration_s(container: av.container.InputContainer, stream) -> float | None:
    if stream is not None and stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


class _PacketSurvey(NamedTuple):
    keyframes: int
    frames: int
    payload_bytes: int


def _survey_packets(data: bytes, deadline: Deadline) -> _PacketSurvey:
    """Counts keyframes, frames and picture bytes by demuxing packets only: no decoding, cheap."""
    keyframes = frames = payload = 0
    with open_container(data) as container:
        stream = video_stream(container)
        if stream is None:
            raise CorruptMedia("no video stream")
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            frames += 1
            payload += packet.size
            keyframes += bool(packet.is_keyframe)
            if frames % 64 == 0:
                deadline.check()
    return _PacketSurvey(keyframes, frames, payload)


class DecodedVideo(NamedTuple):
    frames: list[np.ndarray]
    selection: str  # "keyframes" or "sequential"
    bits_per_pixel: float  # the picture stream's payload per pixel per frame: how hard it was compressed


def decode_video_frames(data: bytes, max_frames: int, limits: MediaLimits) -> DecodedVideo:
    """Samples up to `max_frames` RGB frames spread across the whole video.

    Decoding keyframes only is about 25x cheaper than decoding every frame, and seeking buys
    nothing when keyframes are far apart (each seek decodes from the previous keyframe). So:
    when the video has at least `max_frames` keyframes, decode keyframes only and keep an
    evenly spaced subset; otherwise decode sequentially once and keep evenly spaced frames.
    The returned selection ("keyframes" or "sequential") is recorded with the features,
    since keyframes carry different compression traces than predicted frames, and so are the
    bits per pixel the picture stream spends (how much of the fine detail the encoder kept).

    Raises:
        CorruptMedia: no frame could be decoded.
        LimitExceeded: decode time ran over `limits.max_decode_s`.
    """
    deadline = limits.deadline()
    try:
        survey = _survey_packets(data, deadline)
        use_keyframes = survey.keyframes >= max_frames
        wanted = set(evenly_spaced(survey.keyframes if use_keyframes else survey.frames, max_frames))
        frames: list[np.ndarray] = []
        with open_container(data) as container:
            stream = video_stream(container)
            stream.thread_type = "AUTO"
            if use_keyframes:
                stream.codec_context.skip_frame = "NONKEY"
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if len(frames) == len(wanted):
                        break
                if index % 16 == 0:
                    deadline.check()
    except av.error.FFmpegError as exc:
        raise CorruptMedia(f"video stream does not decode: {exc}") from exc
    if not frames:
        raise CorruptMedia("video stream has no decodable frames")
    pixels = frames[0].shape[0] * frames[0].shape[1] * max(survey.frames, 1)
    return DecodedVideo(frames, "keyframes" if use_keyframes else "sequential", survey.payload_bytes * 8 / pixels)


def decode_audio(data: bytes, sample_rate: int, limits: MediaLimits) -> np.ndarray:
    """Decodes the first audio stream to mono float32 at `sample_rate`.

    Raises:
        CorruptMedia: the stream does not decode or holds no samples.
        LimitExceeded: the decoded track is longer than `limits.max_duration_s`, or decoding
            ran over `limits.max_decode_s`.
    """
    deadline = limits.deadline()
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    samples = 0
    max_samples = int(limits.max_duration_s * sample_rate)
    try:
        with open_container(data) as container:
            stream = audio_stream(container)
            for index, frame in enumerate(container.decode(stream)):
                for resampled in resampler.resample(frame):
                    chunk = resampled.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    samples += chunk.size
                if samples > max_samples:
                    limits.check_duration(samples / sample_rate)
                if index % 64 == 0:
                    deadline.check()
            for resampled in resampler.resample(None):
                chunks.append(resampled.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise CorruptMedia(f"audio stream does not decode: {exc}") from exc
    if not chunks or sum(c.size for c in chunks) == 0:
        raise CorruptMedia("audio stream has no decodable samples")
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    if not np.all(np.isfinite(audio)):
        raise CorruptMedia("audio stream decodes to non-finite samples")
    return audio
