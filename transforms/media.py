"""Media decoding shared by the feature extractors: images (Pillow), video and audio (PyAV).

The media type comes from the bytes, never from the file name or the upload event: an
uploader can name anything `.jpg`. Every decoder raises `MediaRejected` subclasses with a
stable reason, so a broken file becomes a dead-letter row that says why.
"""

from __future__ import annotations

import contextlib
import io
import os
import urllib.parse
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

import av
import cv2
import numpy as np
from apache_beam.io.filesystems import FileSystems
from PIL import Image, UnidentifiedImageError

from schemas.records import StoredMedia
from transforms.limits import CorruptMedia, Deadline, MediaLimits, MediaRejected, UnsupportedMedia

IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "AVIF", "JPEG2000"})
# Formats whose extra frames are an animation. A TIFF's pages and an MPO's second picture (a
# stereo pair or a preview) are separate pictures, not frames in time: the first one is shown.
ANIMATED_FORMATS = frozenset({"GIF", "PNG", "WEBP", "AVIF"})
# Pictures are analysed at no more than this many pixels (about 1080p), as a platform's
# renditions are: a 4K or 8K frame would cost seconds and gigabytes in the full-resolution
# signals without telling the detector more. Larger frames are shrunk with area averaging.
MAX_ANALYSIS_PIXELS = 1920 * 1080
# Pillow's own bomb guard is switched off: `MediaLimits.check_pixels` applies the job's
# `--max_pixels` to the header's size before any pixel is decoded, and names the flag.
Image.MAX_IMAGE_PIXELS = None
_ORIENTATION_TAG = 0x0112
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
CUT_SHORT = "+cut_short"  # appended to a video's frame selection when its stream ended early
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError)


Media = bytes | StoredMedia


def local_path(uri: str) -> str | None:
    """The file a local path or file:// URI names; None for other schemes (gs://)."""
    if "://" not in uri:  # a path, even one with a colon in a file name
        return uri
    parts = urllib.parse.urlsplit(uri)
    return urllib.parse.unquote(parts.path) if parts.scheme.lower() == "file" else None


def _unreadable(uri: str, exc: BaseException) -> MediaRejected:
    """The rejection of stored media that can no longer be opened where fetch found it."""
    return MediaRejected(f"stored media at {uri} cannot be read again: {exc}", "media_unreadable")


def media_file(media: Media) -> BinaryIO:
    """A binary file over the media: its bytes in memory, or the stored object opened for
    ranged reads (a local file, or through Beam's FileSystems: gs://).

    Raises:
        MediaRejected ("media_unreadable"): the stored object can no longer be opened.
    """
    if not isinstance(media, StoredMedia):
        return io.BytesIO(media)
    path = local_path(media.uri)
    try:
        if path is not None:
            return open(path, "rb")
        return FileSystems.open(media.uri, compression_type="uncompressed")
    except Exception as exc:
        raise _unreadable(media.uri, exc) from exc


def media_size(media: Media) -> int:
    return media.size if isinstance(media, StoredMedia) else len(media)


def open_image(data: Media, limits: MediaLimits) -> Image.Image | None:
    """Opens `data` as an image (header only, no pixel decode), or None if it is not one.

    Raises:
        LimitExceeded: the image has more pixels than allowed (checked before decoding, so a
            decompression bomb is never expanded).
        UnsupportedMedia: an image format the detector does not take.
    """
    try:
        image = Image.open(media_file(data))
    except UnidentifiedImageError:
        return None
    except _IMAGE_ERRORS as exc:
        raise CorruptMedia(f"image header is unreadable: {exc}") from exc
    if image.format not in IMAGE_FORMATS:
        raise UnsupportedMedia(f"image format {image.format} is not supported")
    limits.check_pixels(*image.size)
    return image


def image_exif(image: Image.Image) -> Image.Exif:
    """The image's EXIF (empty when it has none). Reading it can decode the whole picture
    (a PNG may keep EXIF after its pixels), so a truncated file fails here.

    Raises:
        CorruptMedia: the picture data or the EXIF block is broken.
    """
    try:
        return image.getexif()
    except _IMAGE_ERRORS as exc:
        raise CorruptMedia(f"image data is truncated or corrupt: {exc}") from exc


def image_frame_count(image: Image.Image) -> int:
    """Frames shown in time: an animation's frames, else 1."""
    if image.format not in ANIMATED_FORMATS:
        return 1
    try:
        return int(getattr(image, "n_frames", 1) or 1)
    except _IMAGE_ERRORS as exc:
        raise CorruptMedia(f"image frames are truncated or corrupt: {exc}") from exc


def fit_for_analysis(frame: np.ndarray) -> np.ndarray:
    """`frame` unchanged, or shrunk (area averaging, aspect kept) to `MAX_ANALYSIS_PIXELS`."""
    height, width = frame.shape[:2]
    size = analysis_size(width, height)
    if size == (width, height):
        return frame
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def analysis_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) a picture is analysed at: its own, or scaled down to the pixel cap."""
    if width * height <= MAX_ANALYSIS_PIXELS:
        return width, height
    scale = (MAX_ANALYSIS_PIXELS / (width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


def _rgb8(image: Image.Image) -> np.ndarray:
    """8-bit RGB of the current frame. 16-bit and float greys (medical, scientific, scanner
    exports) are scaled to 8 bits; Pillow's own conversion clips them to white."""
    if image.mode not in _HIGH_DEPTH_MODES:
        return np.asarray(image.convert("RGB"))
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(values.max(initial=0.0))
    if image.mode == "F":
        top = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
    else:
        top = 65535.0 if image.mode.startswith("I;16") or peak > 255.0 else 255.0
    grey = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def decode_image_frames(image: Image.Image, max_frames: int) -> list[np.ndarray]:
    """RGB frames of a still (one) or an animation (up to `max_frames`, evenly spaced), turned
    upright as the EXIF orientation says (phone photos are stored sideways) and fitted to
    `MAX_ANALYSIS_PIXELS`.

    Raises:
        CorruptMedia: the picture data is truncated or corrupt.
    """
    transpose = _ORIENTATION_TRANSPOSE.get(image_exif(image).get(_ORIENTATION_TAG))
    indices = evenly_spaced(image_frame_count(image), max_frames)
    frames = []
    try:
        for index in indices:
            image.seek(index)
            frame = image.transpose(transpose) if transpose is not None else image
            frames.append(fit_for_analysis(_rgb8(frame)))
    except _IMAGE_ERRORS as exc:
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
def open_container(data: Media) -> Iterator[av.container.InputContainer]:
    """Opens media with FFmpeg (a stored local file by its path, which FFmpeg reads itself,
    through its `file:` protocol only, so a name like "concat:a|b" is a name; anything else
    through a Python file); a file FFmpeg cannot parse is `CorruptMedia`."""
    path = local_path(data.uri) if isinstance(data, StoredMedia) else None
    options = {"protocol_whitelist": "file"} if path is not None else {}
    with contextlib.nullcontext(f"file:{os.path.abspath(path)}") if path is not None else media_file(data) as source:
        try:
            container = av.open(source, mode="r", options=options)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:  # a stored file gone since fetched
            raise _unreadable(data.uri, exc) from exc
        except av.error.FFmpegError as exc:
            raise CorruptMedia(f"not a decodable media container: {exc}") from exc
        try:
            yield container
        finally:
            container.close()


# Decoder threads per video. The job runs one item per core (Beam's workers), so threads inside
# a decoder only compete with the other items' work: measured, two workers on two cores spent
# a third more CPU per item with FFmpeg's, OpenCV's and OpenBLAS's own thread pools than with
# one thread each (BENCHMARKS.md, "Cost per upload at real resolutions").
DECODE_THREADS = 1


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The main video stream: the largest picture among the real ones (cover art in an audio
    file is an attached picture, not a stream; a thumbnail or preview track is smaller than the
    programme), the first of equals."""
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        return None
    stream = max(streams, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0))
    stream.codec_context.thread_count = DECODE_THREADS
    return stream


def audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    return container.streams.audio[0] if container.streams.audio else None


def stream_duration_s(container: av.container.InputContainer, stream) -> float | None:
    if stream is not None and stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


class _PacketSurvey(NamedTuple):
    frames: int
    payload_bytes: int
    keyframe_times: tuple[int | None, ...]  # presentation time of each keyframe packet, in order
    codec: str

    @property
    def keyframes(self) -> int:
        return len(self.keyframe_times)


def _survey_packets(container: av.container.InputContainer, deadline: Deadline) -> _PacketSurvey:
    """Counts keyframes, frames and picture bytes by demuxing packets only: no decoding, cheap."""
    frames = payload = 0
    times: list[int | None] = []
    stream = video_stream(container)
    if stream is None:
        raise CorruptMedia("no video stream")
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        frames += 1
        payload += packet.size
        if packet.is_keyframe:
            times.append(packet.pts)
        if frames % 64 == 0:
            deadline.check()
    return _PacketSurvey(frames, payload, tuple(times), stream.codec_context.name)


# A seek lands on the keyframe at or before the time asked for; the frames decoded from there
# to the keyframe wanted are bounded (a stream whose seek lands far off yields no pair).
_MAX_FRAMES_TO_KEYFRAME = 32


class DecodedVideo(NamedTuple):
    frames: list[np.ndarray]
    selection: str  # "keyframes" or "sequential", "+cut_short" when the stream ended early
    bits_per_pixel: float  # the picture stream's payload per pixel per frame: how hard it was compressed
    # Grey picture of the frame right after each sampled one (None after the last frame of the
    # video, or where it did not decode): frame-to-frame motion.
    successors: list[np.ndarray | None]


def decode_video_frames(data: Media, max_frames: int, limits: MediaLimits) -> DecodedVideo:
    """Samples up to `max_frames` RGB frames spread across the whole video.

    Decoding keyframes only is about 25x cheaper than decoding every frame, and seeking buys
    nothing when keyframes are far apart (each seek decodes from the previous keyframe). So:
    when the video has at least `max_frames` keyframes, decode keyframes only and keep an
    evenly spaced subset; otherwise decode sequentially once and keep evenly spaced frames.
    Each sampled frame comes with the grey picture of the frame right after it, for
    frame-to-frame motion: free when decoding sequentially, and in keyframe mode a seek to
    each sampled keyframe and a frame or two decoded from there.
    The returned selection ("keyframes" or "sequential", with `CUT_SHORT` appended when fewer
    frames decoded than the packets promised) is recorded with the features,
    since keyframes carry different compression traces than predicted frames, and so are the
    bits per pixel the picture stream spends (how much of the fine detail the encoder kept).

    Raises:
        CorruptMedia: no frame could be decoded.
        LimitExceeded: decode time ran over `limits.max_decode_s`.
    """
    deadline = limits.deadline()
    try:
        with open_container(data) as container:  # demuxed to the end, then sought back in: one open
            survey = _survey_packets(container, deadline)
            use_keyframes = survey.keyframes >= max_frames
            wanted = set(evenly_spaced(survey.keyframes if use_keyframes else survey.frames, max_frames))
            sought = None
            if use_keyframes and None not in survey.keyframe_times:
                times = [survey.keyframe_times[i] for i in sorted(wanted)]
                sought = _keyframes_with_successors(container, times, deadline)
        if sought is not None:
            frames, after, coded_pixels = sought
            pixels = coded_pixels * max(survey.frames, 1)
            return DecodedVideo(frames, "keyframes", survey.payload_bytes * 8 / pixels, after)
        frames: list[np.ndarray] = []
        keyframe_times: list[int | None] = []
        successors: dict[int, np.ndarray] = {}
        wanted_after = set() if use_keyframes else {index + 1 for index in wanted}
        last = max(wanted | wanted_after)
        coded_pixels = 0
        with open_container(data) as container:
            stream = video_stream(container)
            if use_keyframes:
                stream.codec_context.skip_frame = "NONKEY"
            try:
                decoded = (frame for frame in container.decode(stream) if frame.key_frame or not use_keyframes)
                # (FFmpeg's VP9 decoder ignores `skip_frame` and returns every frame: keyframes are kept by their flag.)
                for index, frame in enumerate(decoded):
                    if index in wanted:
                        frames.append(_upright_rgb(frame))
                        keyframe_times.append(frame.pts)
                        coded_pixels = coded_pixels or frame.width * frame.height
                    if index in wanted_after:
                        rgb = frames[-1] if index in wanted else _upright_rgb(frame)
                        successors[index - 1] = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
                    if index >= last:
                        break
                    if index % 16 == 0:
                        deadline.check()
            except av.error.FFmpegError:
                # Damage part way (a cut-off or corrupted packet; with threaded decoding the
                # error can surface before or after the frames ahead of it): what decoded is
                # kept and marked cut short below, and no frames at all is CorruptMedia.
                if not frames:
                    raise
    except av.error.FFmpegError as exc:
        raise CorruptMedia(f"video stream does not decode: {exc}") from exc
    if not frames:
        raise CorruptMedia("video stream has no decodable frames")
    pixels = coded_pixels * max(survey.frames, 1)
    selection = "keyframes" if use_keyframes else "sequential"
    if len(frames) < len(wanted):
        # The demuxer found packets the decoder could not turn into pictures: a file cut off
        # or damaged part way. What did decode is still evidence; the selection says so.
        selection += CUT_SHORT
    if use_keyframes:
        after = _frames_after(data, keyframe_times, deadline)
    else:
        after = [successors.get(index) for index in sorted(wanted)[: len(frames)]]
    return DecodedVideo(frames, selection, survey.payload_bytes * 8 / pixels, after)


def _seek_pair(container, stream, time: int) -> tuple[av.VideoFrame | None, av.VideoFrame | None]:
    """The keyframe presented at `time` (stream time base) and the frame right after it: a seek
    to the keyframe, then the frame or two decoded up to its successor. (None, None) when the
    seek lands past it; (keyframe, None) when nothing decodes after it."""
    container.seek(time, stream=stream, backward=True, any_frame=False)
    keyframe = None
    for count, frame in enumerate(container.decode(stream)):
        if frame.pts is None or count > _MAX_FRAMES_TO_KEYFRAME:
            break
        if frame.pts > time:
            return keyframe, frame if keyframe is not None else None
        if frame.pts == time:
            keyframe = frame
    return keyframe, None


def _grey_of(frame: av.VideoFrame | None) -> np.ndarray | None:
    return None if frame is None else cv2.cvtColor(_upright_rgb(frame), cv2.COLOR_RGB2GRAY)


def _keyframes_with_successors(
    container: av.container.InputContainer, times: list[int], deadline: Deadline
) -> tuple[list[np.ndarray], list[np.ndarray | None], int] | None:
    """The keyframes presented at `times` (RGB), the grey picture of the frame right after each
    (None after the last frame), and the coded picture size: one seek per keyframe, decoding
    it and the frame or two up to its successor, so no keyframe is decoded twice. None when a
    keyframe cannot be reached this way (the stream does not seek, or its packets' times do not
    match its frames'): the caller then decodes keyframes in order and seeks for the successors."""
    frames: list[np.ndarray] = []
    after: list[np.ndarray | None] = []
    coded_pixels = 0
    try:
        stream = video_stream(container)
        for time in times:
            keyframe, successor = _seek_pair(container, stream, time)
            if keyframe is None:
                return None
            frames.append(_upright_rgb(keyframe))
            after.append(_grey_of(successor))
            coded_pixels = coded_pixels or keyframe.width * keyframe.height
            deadline.check()
    except av.error.FFmpegError:
        return None
    return frames, after, coded_pixels


def _frames_after(data: Media, times: list[int | None], deadline: Deadline) -> list[np.ndarray | None]:
    """Grey picture of the frame right after each keyframe presented at `times` (stream time
    base), by `_seek_pair`. None where the stream cannot seek there or the next frame does not
    decode: the pairs are extra evidence, and the frames already decoded stand without them."""
    after: list[np.ndarray | None] = [None] * len(times)
    try:
        with open_container(data) as container:
            stream = video_stream(container)
            for slot, time in enumerate(times):
                if time is None:
                    continue
                after[slot] = _grey_of(_seek_pair(container, stream, time)[1])
                deadline.check()
    except av.error.FFmpegError:
        pass  # what was found before the stream failed is kept
    return after


def _upright_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB of a decoded frame, scaled by FFmpeg to `MAX_ANALYSIS_PIXELS` and turned the way
    the stream's display matrix says (a phone stores portrait video as landscape pictures
    with a rotation to apply on display; `frame.rotation` is counter-clockwise degrees)."""
    width, height = analysis_size(frame.width, frame.height)
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    quarter_turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, quarter_turns)) if quarter_turns else rgb


class _Track:
    """Decoded samples appended into one buffer sized from the stream's stated duration (grown
    by half when that falls short), so a long track is never held twice, as pieces and joined;
    the part of the buffer never written is never touched, so never resident."""

    def __init__(self, expected: int):
        self._buffer, self.size = np.empty(max(expected, 1 << 14), np.float32), 0

    def append(self, piece: np.ndarray) -> None:
        end = self.size + piece.size
        if end > self._buffer.size:
            grown = np.empty(max(end, self._buffer.size * 3 // 2), np.float32)
            grown[: self.size] = self._buffer[: self.size]
            self._buffer = grown
        self._buffer[self.size : end] = piece
        self.size = end

    def samples(self) -> np.ndarray:
        return self._buffer[: self.size]


def decode_audio(data: Media, sample_rate: int, limits: MediaLimits) -> np.ndarray:
    """Decodes the first audio stream to mono float32 at `sample_rate`.

    Raises:
        CorruptMedia: the stream does not decode or holds no samples.
        LimitExceeded: the decoded track is longer than `limits.max_duration_s`, or decoding
            ran over `limits.max_decode_s`.
    """
    deadline = limits.deadline()
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    max_samples = int(limits.max_duration_s * sample_rate)
    try:
        with open_container(data) as container:
            stream = audio_stream(container)
            expected = (stream_duration_s(container, stream) or 0.0) * sample_rate
            track = _Track(min(int(expected * 1.02) + sample_rate, max_samples + sample_rate))
            for index, frame in enumerate(container.decode(stream)):
                for resampled in resampler.resample(frame):
                    track.append(resampled.to_ndarray().reshape(-1))
                if track.size > max_samples:
                    limits.check_duration(track.size / sample_rate)
                if index % 64 == 0:
                    deadline.check()
            for resampled in resampler.resample(None):
                track.append(resampled.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise CorruptMedia(f"audio stream does not decode: {exc}") from exc
    if track.size == 0:
        raise CorruptMedia("audio stream has no decodable samples")
    audio = track.samples()
    if not np.all(np.isfinite(audio)):
        raise CorruptMedia("audio stream decodes to non-finite samples")
    return audio
