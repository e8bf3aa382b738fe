"""Uploads as phones, cameras and export tools write them: orientation, deep pixels, newer
formats, oversized pictures, extra tracks and broken files."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import transforms.media as media
from models.signature import VISUAL_HANDCRAFTED_DIM
from transforms.limits import CorruptMedia, LimitExceeded, MediaLimits
from transforms.media import (
    CUT_SHORT,
    MAX_ANALYSIS_PIXELS,
    decode_image_frames,
    decode_video_frames,
    evenly_spaced,
    open_image,
)
from transforms.metadata import probe_media
from transforms.visual import extract_visual

from .conftest import make_video

LIMITS = MediaLimits()


def _picture(width: int, height: int) -> np.ndarray:
    """A picture whose top-left quarter is bright and the rest dark: its orientation shows."""
    pixels = np.full((height, width, 3), 30, np.uint8)
    pixels[: height // 2, : width // 2] = 220
    return pixels


def _saved(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _frames(data: bytes) -> list[np.ndarray]:
    return decode_image_frames(open_image(data, LIMITS), 8)


def test_phone_video_is_turned_upright_by_its_display_matrix(tmp_path):
    # Stored 160x120 with a 90 degree clockwise turn to apply on display (rotation -90).
    data = Path(make_video(str(tmp_path / "v.mp4"), rotation=-90, with_audio=False)).read_bytes()
    frames = decode_video_frames(data, 4, LIMITS).frames
    assert frames[0].shape == (160, 120, 3)
    upside_down = Path(make_video(str(tmp_path / "u.mp4"), rotation=180, with_audio=False)).read_bytes()
    plain = Path(make_video(str(tmp_path / "p.mp4"), with_audio=False)).read_bytes()
    turned, reference = (
        decode_video_frames(upside_down, 1, LIMITS).frames[0],
        decode_video_frames(plain, 1, LIMITS).frames[0],
    )
    assert np.abs(turned.astype(int) - reference[::-1, ::-1].astype(int)).mean() < 3


def test_exif_orientation_turns_a_sideways_photo_upright():
    stored = Image.fromarray(_picture(80, 60))  # stored landscape, bright corner top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    (frame,) = _frames(_saved(stored, "JPEG", exif=exif, quality=95))
    assert frame.shape == (80, 60, 3)
    assert frame[:30, 30:].mean() > 180 and frame[:30, :30].mean() < 80  # bright corner now top-right


@pytest.mark.parametrize(
    "mode, values, fmt",
    [("I;16", np.full((40, 50), 40000, np.uint16), "PNG"), ("I;16", np.full((40, 50), 40000, np.uint16), "TIFF"),
     ("F", np.full((40, 50), 0.5, np.float32), "TIFF")],
)  # fmt: skip
def test_deep_pixel_greys_are_scaled_to_8_bits_not_clipped(mode, values, fmt):
    image = Image.fromarray(values) if mode == "F" else Image.frombytes(mode, (50, 40), values.tobytes())
    (frame,) = _frames(_saved(image, fmt))
    assert frame.shape == (40, 50, 3)
    assert 120 <= int(frame.mean()) <= 160  # 40000/65535 and 0.5 are both mid-grey, not white or black


@pytest.mark.parametrize("fmt, container", [("AVIF", "avif"), ("JPEG2000", "jpeg2000")])
def test_newer_still_formats_are_read(fmt, container):
    data = _saved(Image.fromarray(_picture(96, 64)), fmt)
    assert probe_media(data, LIMITS).container == container
    visual = extract_visual(data, "image", LIMITS)
    assert visual.frame_selection == "still" and visual.handcrafted.shape == (VISUAL_HANDCRAFTED_DIM,)


def test_tiff_pages_are_separate_pictures_not_an_animation():
    pages = [Image.fromarray(_picture(64, 48)), Image.fromarray(255 - _picture(64, 48))]
    data = _saved(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    info = probe_media(data, LIMITS)
    assert info.duration_s is None
    assert extract_visual(data, "image", LIMITS).frame_selection == "still"


def test_animated_webp_duration_comes_from_its_frame_delay():
    frames = [Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)) for i in range(5)]
    data = _saved(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=80, lossless=True)
    assert probe_media(data, LIMITS).duration_s == pytest.approx(0.4)


def test_oversized_pictures_are_analysed_at_about_1080p():
    data = _saved(Image.fromarray(_picture(3000, 2000)), "PNG")  # 6 Mpx: within the pixel limit
    (frame,) = _frames(data)
    height, width = frame.shape[:2]
    assert height * width <= MAX_ANALYSIS_PIXELS and abs(width / height - 1.5) < 0.01


def test_oversized_video_frames_are_scaled_by_the_decoder(tmp_path):
    data = Path(make_video(str(tmp_path / "v.mp4"), seconds=0.4, size=(2560, 1440), with_audio=False)).read_bytes()
    video = decode_video_frames(data, 2, LIMITS)
    height, width = video.frames[0].shape[:2]
    assert height * width <= MAX_ANALYSIS_PIXELS and abs(width / height - 16 / 9) < 0.01
    assert 0 < video.bits_per_pixel < 1  # per stored pixel, not per analysed one


def test_a_thumbnail_track_ahead_of_the_programme_is_not_taken_for_it(tmp_path):
    path = str(tmp_path / "v.mkv")
    with av.open(path, "w") as container:
        thumb = container.add_stream("mjpeg", rate=1)
        thumb.width, thumb.height, thumb.pix_fmt = 48, 48, "yuvj420p"
        main = container.add_stream("libx264", rate=10)
        main.width, main.height, main.pix_fmt = 160, 96, "yuv420p"
        for packet in thumb.encode(av.VideoFrame.from_ndarray(_picture(48, 48), format="rgb24")):
            container.mux(packet)
        for _ in range(10):
            for packet in main.encode(av.VideoFrame.from_ndarray(_picture(160, 96), format="rgb24")):
                container.mux(packet)
        for stream in (thumb, main):
            for packet in stream.encode():
                container.mux(packet)
    data = Path(path).read_bytes()
    assert decode_video_frames(data, 4, LIMITS).frames[0].shape == (96, 160, 3)
    assert (probe_media(data, LIMITS).width, probe_media(data, LIMITS).height) == (160, 96)


def test_a_long_thin_strip_is_analysed_without_a_face_search_crash():
    data = _saved(Image.fromarray(np.random.default_rng(0).integers(0, 255, (20_000, 16, 3), np.uint8)), "PNG")
    visual = extract_visual(data, "image", LIMITS)
    assert visual.face_mask.sum() == 0 and np.isfinite(visual.handcrafted).all()


def test_a_truncated_png_is_corrupt_media_in_every_step():
    data = _saved(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "PNG")
    broken = data[: len(data) // 2]
    with pytest.raises(CorruptMedia):
        probe_media(broken, LIMITS)
    with pytest.raises(CorruptMedia):
        extract_visual(broken, "image", LIMITS)


def test_a_decompression_bomb_header_names_the_pixel_limit():
    # A 1x1 PNG whose header is rewritten to claim 100000 x 100000 pixels.
    data = bytearray(_saved(Image.new("L", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", 100_000, 100_000)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # IHDR checksum
    data = bytes(data)
    with pytest.raises(LimitExceeded, match="max_pixels"):
        probe_media(data, LIMITS)


def test_a_video_cut_off_after_its_index_keeps_what_decodes_and_says_so(tmp_path):
    # Index first (faststart), then the media data cut off: the packets it lists never arrive.
    path = make_video(str(tmp_path / "v.mp4"), seconds=3, with_audio=False, container_options={"movflags": "faststart"})
    data = Path(path).read_bytes()
    assert decode_video_frames(data, 8, LIMITS).selection == "sequential"
    cut = decode_video_frames(data[: int(len(data) * 0.6)], 8, LIMITS)
    assert cut.selection == "sequential" + CUT_SHORT and 1 <= len(cut.frames) < 8


class _FailingDecode:
    """A container whose decoder raises after `good` frames, as FFmpeg does on a damaged packet."""

    def __init__(self, container, good: int):
        self._container, self._good = container, good

    def __getattr__(self, name):
        return getattr(self._container, name)

    def decode(self, stream):
        for index, frame in enumerate(self._container.decode(stream)):
            if index == self._good:
                raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
            yield frame


class _FailingSeek:
    """A container that cannot seek, as FFmpeg reports for a stream without an index."""

    def __init__(self, container):
        self._container = container

    def __getattr__(self, name):
        return getattr(self._container, name)

    def seek(self, *args, **kwargs):
        raise av.error.PermissionError(1, "Operation not permitted")


def test_a_keyframe_video_that_cannot_seek_keeps_its_frames_without_pairs(tmp_path, monkeypatch):
    data = Path(make_video(str(tmp_path / "v.mp4"), seconds=4, gop=5, with_audio=False)).read_bytes()
    real_open = media.open_container

    @contextlib.contextmanager
    def unseekable_open(payload):
        with real_open(payload) as container:
            yield _FailingSeek(container)

    monkeypatch.setattr(media, "open_container", unseekable_open)
    video = decode_video_frames(data, 8, LIMITS)
    assert video.selection == "keyframes" and len(video.frames) == 8
    assert video.successors == [None] * 8


@pytest.mark.parametrize("good", [0, 12])
def test_a_decoder_error_part_way_keeps_the_frames_before_it(tmp_path, monkeypatch, good):
    data = Path(make_video(str(tmp_path / "v.mp4"), seconds=3, with_audio=False)).read_bytes()
    real_open = media.open_container

    @contextlib.contextmanager
    def failing_open(payload):
        with real_open(payload) as container:
            yield _FailingDecode(container, good)

    monkeypatch.setattr(media, "open_container", failing_open)
    if good == 0:
        with pytest.raises(CorruptMedia, match="does not decode"):
            decode_video_frames(data, 8, LIMITS)
        return
    cut = decode_video_frames(data, 8, LIMITS)
    assert cut.selection == "sequential" + CUT_SHORT and 1 <= len(cut.frames) < 8


def _keyframe_clip(codec: str, container: str, bframes: int | None = None) -> bytes:
    """100 frames, a keyframe every 10: enough keyframes for keyframe sampling."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 128, "yuv420p"
        options = {"g": "10"}
        if codec == "libx264":
            options |= {"keyint_min": "10", "sc_threshold": "0"}
        if codec == "libx265":
            options["x265-params"] = "keyint=10:min-keyint=10:scenecut=0:log-level=0"
        if bframes is not None:
            options["bf"] = str(bframes)
        stream.options = options
        rng = np.random.default_rng(0)
        ramp = np.mgrid[0:128, 0:160][1][..., None].astype(np.float32)
        for index in range(100):
            picture = np.clip(ramp + 2 * index + rng.normal(0, 6, (128, 160, 3)), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("codec", "container", "bframes"),
    [("libx264", "mp4", None), ("libx264", "matroska", None), ("libx264", "mp4", 0), ("libx265", "mp4", None),
     ("libvpx-vp9", "webm", None), ("mpeg4", "mp4", None)],
)  # fmt: skip
def test_one_seek_per_keyframe_reads_the_frames_and_successors_that_decoding_in_order_reads(
    codec, container, bframes, monkeypatch
):
    data = _keyframe_clip(codec, container, bframes)
    sought = decode_video_frames(data, 8, MediaLimits())
    monkeypatch.setattr(media, "_keyframes_with_successors", lambda *args: None)  # the keyframes-in-order path
    in_order = decode_video_frames(data, 8, MediaLimits())
    assert sought.selection == in_order.selection == "keyframes"
    assert len(sought.frames) == len(in_order.frames) == 8
    assert all(np.array_equal(a, b) for a, b in zip(sought.frames, in_order.frames))
    assert all(
        (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
        for a, b in zip(sought.successors, in_order.successors)
    )
    assert sum(a is not None for a in sought.successors) >= 7
    assert sought.bits_per_pixel == in_order.bits_per_pixel
    # Keyframes, whatever the decoder does with `skip_frame` (VP9's ignores it): the ones the packets announce.
    with av.open(io.BytesIO(data)) as container:
        keyframes = [frame for frame in container.decode(video=0) if frame.key_frame]
    picked = [keyframes[i].to_ndarray(format="rgb24") for i in evenly_spaced(len(keyframes), 8)]
    assert all(np.array_equal(a, b) for a, b in zip(sought.frames, picked))
