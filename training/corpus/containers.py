"""Writing the corpus's media to files: images with EXIF/XMP/text chunks, video and audio
containers with their tags (PyAV), and the deliberately broken files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from training.corpus.audio import _render_audio, _speech_tracks, _SpeechTracks, _time_warped
from training.corpus.plans import (
    _AUDIO,
    _CONTROL_RATE,
    _ENCODE,
    _IPTC_PREFIX,
    _ITEM_STREAM,
    _VISUAL,
    ItemPlan,
    MetadataPlan,
    _rng,
    _weighted_choice,
)
from training.corpus.visual import _render_frames, _smooth_path


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
