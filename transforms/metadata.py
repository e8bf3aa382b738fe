"""Metadata features: container and codec facts, EXIF/XMP, C2PA credentials, account context.

`probe_media` is the first look at every file: it decides the media type from the bytes,
applies the pixel and duration limits before anything is decoded, and reads provenance.

`metadata_vector` layout: declared once in `models.metadata_layout` (name, width, meaning;
`python -c "from models.metadata_layout import describe; print(describe())"` prints it).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zlib

import c2pa
import numpy as np
from apache_beam.metrics import Metrics

from models.metadata_layout import METADATA_DIM, SLOTS, SOFTWARE_BUCKETS, slot
from schemas.records import MediaBlob, MediaFeatures, MediaInfo, UploadEvent, utc_now
from schemas.vocabulary import AI_SOURCE_TYPES, CAPTURE_SOURCE_TYPES, MEDIA_TYPES
from transforms.dead_letter import MediaDoFn, MediaStep
from transforms.limits import CorruptMedia, MediaLimits, UnsupportedMedia
from transforms.media import (
    Media,
    audio_stream,
    image_exif,
    image_frame_count,
    media_file,
    open_container,
    open_image,
    stream_duration_s,
    video_stream,
)

_XMP_START, _XMP_END = b"<x:xmpmeta", b"</x:xmpmeta>"
_MAX_XMP_BYTES = 1 << 20
_DIGITAL_SOURCE_TYPE = re.compile(
    r"DigitalSourceType(?:\s*=\s*[\"']|>\s*|[^>]*?rdf:resource\s*=\s*[\"'])([^\"'<\s]+)", re.IGNORECASE
)
_ENCODER_BUCKETS = SOFTWARE_BUCKETS
# A camera's own software string: a version number, "Firmware", "Ver.1.0", "HDR+", or a model
# build code (capitals and digits, at least one of each kind: "G960FXXU2CRLI"; a word like
# "Photoshop" is an editor, not firmware).
_FIRMWARE = re.compile(
    r"^[\d.]+$|firmware|\bver\.?\s*\d|hdr\+|(?-i:^(?=[A-Z0-9_.]*\d)(?=[A-Z0-9_.]*[A-Z])[A-Z0-9]{5,}[A-Z0-9_.]*$)"
    r"|^digital camera",
    re.IGNORECASE,
)
_EXIF_TIME_FORMAT = "%Y:%m:%d %H:%M:%S"
_MAX_COMMENT_CHARS = 4096
_GENERATION_CHUNKS = ("parameters", "prompt", "workflow", "sd-metadata", "invokeai_metadata", "Dream")
_GENERATION_SETTINGS = re.compile(r"\bsteps:\s*\d+.*\b(sampler|cfg scale|seed):", re.IGNORECASE | re.DOTALL)
_C2PA_MIME = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
}


def _exif_time(value: object) -> dt.datetime | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" (no zone: read as UTC), or None when absent or malformed."""
    text = _clean_text(value)
    try:
        return dt.datetime.strptime(text, _EXIF_TIME_FORMAT).replace(tzinfo=dt.UTC) if text else None
    except ValueError:
        return None


def _iso_time(value: object) -> dt.datetime | None:
    text = _clean_text(value)
    if not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _clean_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).replace("\x00", "").strip()
    return text[:256] or None


_SCAN_BYTES = 1 << 20


def _xmp_packet(handle) -> bytes | None:
    """The file's first XMP packet (from its start marker to its end marker, at most
    `_MAX_XMP_BYTES`), found by reading the file through in blocks, never whole."""
    overlap, offset, tail = len(_XMP_START) - 1, 0, b""
    while block := handle.read(_SCAN_BYTES):
        window = tail + block
        found = window.find(_XMP_START)
        if found >= 0:
            handle.seek(offset - len(tail) + found)
            packet = handle.read(_MAX_XMP_BYTES)
            end = packet.find(_XMP_END)
            return packet[:end] if end >= 0 else packet
        tail, offset = window[-overlap:], offset + len(block)
    return None


def digital_source_type(data: Media) -> str | None:
    """The IPTC digital source type from the file's XMP packet, as its short code."""
    with media_file(data) as handle:
        packet = _xmp_packet(handle)
    if packet is None:
        return None
    match = _DIGITAL_SOURCE_TYPE.search(packet.decode("utf-8", errors="replace"))
    return match.group(1).rstrip("/").rsplit("/", 1)[-1] if match else None


@functools.cache
def _offline_c2pa_context() -> c2pa.Context:
    # A hostile file can point at a remote manifest or an OCSP responder; reading must never
    # make the worker fetch a URL an uploader chose.
    settings = c2pa.Settings.from_dict({"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}})
    return c2pa.Context(settings)


def read_c2pa(data: Media, mime_type: str | None) -> tuple[bool, str | None, str, str | None]:
    """(present, claim generator, validation state, digital source type) of a C2PA manifest.

    A file without a manifest is the common case and not an error. A manifest that does not
    validate is reported as such (it is a signal, not a reason to drop the item).
    """
    if mime_type is None:
        return False, None, "absent", None
    with media_file(data) as handle:
        return _c2pa_manifest(handle, mime_type)


def _c2pa_manifest(handle, mime_type: str) -> tuple[bool, str | None, str, str | None]:
    try:
        reader = c2pa.Reader(mime_type, handle, context=_offline_c2pa_context())
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "ManifestNotFound" in str(exc):
            return False, None, "absent", None
        return True, None, f"unreadable: {str(exc)[:120]}", None
    try:
        manifest = reader.get_active_manifest() or {}
        state = (reader.get_validation_state() or "unknown").lower()
        generator = manifest.get("claim_generator") or next(
            (g.get("name") for g in manifest.get("claim_generator_info", []) if isinstance(g, dict)), None
        )
        source_type = None
        for assertion in manifest.get("assertions", []):
            if str(assertion.get("label", "")).startswith("c2pa.actions"):
                for action in assertion.get("data", {}).get("actions", []):
                    if action.get("digitalSourceType"):
                        source_type = str(action["digitalSourceType"]).rstrip("/").rsplit("/", 1)[-1]
        return True, _clean_text(generator), state, source_type
    finally:
        reader.close()


def _image_info(data: Media, limits: MediaLimits) -> MediaInfo | None:
    image = open_image(data, limits)
    if image is None:
        return None
    exif = image_exif(image)
    frames = image_frame_count(image)
    present, generator, validation, c2pa_source = read_c2pa(data, _C2PA_MIME.get(image.format))
    # Animated images state a per-frame delay only; the first frame's stands for all.
    duration = _frame_delay_ms(image) * frames / 1000.0 if frames > 1 else None
    exif_ifd = exif.get_ifd(0x8769)
    software = _image_software(image, exif)
    return MediaInfo(
        media_type="image",
        container=image.format.lower(),
        capture_time=_exif_time(exif_ifd.get(0x9003) or exif.get(0x0132)),
        has_location=bool(exif.get_ifd(0x8825)),
        generation_parameters=_generation_parameters(image, exif_ifd),
        width=image.size[0],
        height=image.size[1],
        duration_s=duration,
        frame_rate=None,
        encoder=software,
        exif_make=_clean_text(exif.get(271)),
        exif_model=_clean_text(exif.get(272)),
        exif_software=software,
        digital_source_type=c2pa_source or digital_source_type(data),
        c2pa_present=present,
        c2pa_claim_generator=generator,
        c2pa_validation=validation,
    )


def _frame_delay_ms(image) -> float:
    """An animation's first frame delay. GIF and APNG state it in the header; WebP only once the
    frame is read. 100 ms (browsers' default for an unstated delay) when none is stated."""
    if "duration" not in image.info:
        try:
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise CorruptMedia(f"image data is truncated or corrupt: {exc}") from exc
    return float(image.info.get("duration") or 100)


def _container_tags(container, *streams) -> dict[str, str]:
    """Container tags, lower-cased, with stream tags filling the gaps: Ogg keeps its Vorbis and
    Opus comments (software, creation time, camera) on the stream, not the container."""
    tags: dict[str, str] = {}
    for stream in streams:
        if stream is not None:
            tags.update({k.lower(): v for k, v in (stream.metadata or {}).items()})
    tags.update({k.lower(): v for k, v in (container.metadata or {}).items()})
    return tags


def _image_software(image, exif) -> str | None:
    """EXIF Software, else the text chunk or comment other formats keep it in: PNG tEXt/iTXt
    "Software", GIF comment extension (the only text a GIF carries)."""
    return _clean_text(exif.get(0x0131) or image.info.get("Software") or image.info.get("software")) or (
        _clean_text(image.info.get("comment")) if image.format == "GIF" else None
    )


def _generation_parameters(image, exif_ifd) -> bool:
    """Whether the image carries the settings it was generated with: Stable Diffusion web UIs
    write a "parameters" text chunk, ComfyUI "prompt" and "workflow" (its node graph), and JPEG
    exports put "Steps: ..., Sampler: ..." in the EXIF UserComment."""
    if any(key in image.info for key in _GENERATION_CHUNKS):
        return True
    comment = exif_ifd.get(0x9286)
    text = comment.decode("utf-8", errors="replace") if isinstance(comment, bytes) else str(comment or "")
    return bool(_GENERATION_SETTINGS.search(text[:_MAX_COMMENT_CHARS]))  # bounded: the pattern backtracks


def _container_info(data: Media, limits: MediaLimits) -> MediaInfo:
    with open_container(data) as container:
        video, audio = video_stream(container), audio_stream(container)
        if video is None and audio is None:
            raise UnsupportedMedia("the file has neither a video nor an audio stream")
        media_type = "video" if video is not None else "audio"
        if video is not None:
            limits.check_pixels(video.codec_context.width, video.codec_context.height)
        duration = stream_duration_s(container, video if video is not None else audio)
        limits.check_duration(duration)
        tags = _container_tags(container, video, audio)
        format_name = container_name(container.format.name, tags.get("major_brand"))
        rate = float(video.average_rate) if video is not None and video.average_rate else None
        info = dict(
            media_type=media_type,
            container=format_name,
            video_codec=video.codec_context.name if video is not None else None,
            audio_codec=audio.codec_context.name if audio is not None else None,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
            duration_s=duration,
            bitrate=int(container.bit_rate) if container.bit_rate else None,
            frame_rate=rate,
            encoder=_clean_text(tags.get("encoder") or tags.get("encoded_by")),
            exif_make=_clean_text(tags.get("make") or tags.get("com.apple.quicktime.make")),
            exif_model=_clean_text(tags.get("model") or tags.get("com.apple.quicktime.model")),
            exif_software=_clean_text(tags.get("software") or tags.get("com.apple.quicktime.software")),
            capture_time=_iso_time(tags.get("creation_time") or tags.get("com.apple.quicktime.creationdate")),
            has_location=any(k in tags for k in ("location", "com.apple.quicktime.location.iso6709", "location-eng")),
        )
    mime = _C2PA_MIME.get(format_name)
    present, generator, validation, c2pa_source = read_c2pa(data, mime)
    return MediaInfo(
        **info,
        digital_source_type=c2pa_source or digital_source_type(data),
        c2pa_present=present,
        c2pa_claim_generator=generator,
        c2pa_validation=validation,
    )


_ISO_BMFF_BRANDS = {"qt": "mov", "m4a": "m4a", "m4b": "m4a", "m4v": "mp4", "3gp4": "3gp", "3gp5": "3gp", "3g2a": "3gp"}


def container_name(ffmpeg_format: str, major_brand: str | None) -> str:
    """A short container name; FFmpeg reports the whole ISO-BMFF family as "mov,mp4,..."."""
    first = ffmpeg_format.split(",")[0]
    if first != "mov":
        return first
    brand = (major_brand or "").strip().lower()
    return _ISO_BMFF_BRANDS.get(brand, "mp4" if brand else "mov")


def probe_media(data: Media, limits: MediaLimits) -> MediaInfo:
    """What the file is, from its bytes: media type, container, codecs, size, provenance.

    Raises:
        LimitExceeded: more pixels or a longer duration than the limits allow.
        CorruptMedia, UnsupportedMedia: the bytes are not media this pipeline can read.
    """
    return _image_info(data, limits) or _container_info(data, limits)


def _encoder_text(info: MediaInfo) -> str:
    """The authoring software, else the encoder or muxer that wrote the file (Matroska's
    writing-application tag names only the muxer, "Lavf", whoever made the content)."""
    return " ".join((info.exif_software or info.encoder or "").lower().split())


def _encoder_bucket(text: str) -> int:
    if not text:
        return _ENCODER_BUCKETS
    family = re.split(r"[\s/\d._-]+", text, maxsplit=1)[0] or text
    return zlib.crc32(family.encode()) % _ENCODER_BUCKETS


def _encoder_string_bucket(text: str) -> int | None:
    return zlib.crc32(text.encode()) % _ENCODER_BUCKETS if text else None


def file_metadata_present(info: MediaInfo) -> bool:
    """Whether the file says anything about its origin; a stripped file says nothing. The
    muxer's encoder tag does not count: every FFmpeg remux writes one."""
    return bool(
        info.exif_make
        or info.exif_model
        or info.exif_software
        or info.capture_time is not None
        or info.has_location
        or info.digital_source_type is not None
        or info.c2pa_present
        or info.generation_parameters
    )


def metadata_vector(info: MediaInfo, event: UploadEvent) -> np.ndarray:
    """Encodes container facts, provenance and account context (layout: `models.metadata_layout`).

    An optional event field that is absent sets its value slot to 0 and its `*_known` slot to
    0, so "not stated" stays distinguishable from "false" or "zero".
    """
    vector = np.zeros((METADATA_DIM,), dtype=np.float32)

    def put(name: str, value: float) -> None:
        vector[slot(name)] = value

    vector[SLOTS["media_type"].start + MEDIA_TYPES.index(info.media_type)] = 1.0
    put("camera_exif", float(bool(info.exif_make or info.exif_model)))
    put("exif_software", float(bool(info.exif_software)))
    put("source_type_present", float(info.digital_source_type is not None))
    put("source_type_ai", float(info.digital_source_type in AI_SOURCE_TYPES))
    put("source_type_capture", float(info.digital_source_type in CAPTURE_SOURCE_TYPES))
    put("c2pa_present", float(info.c2pa_present))
    put("c2pa_valid", float(info.c2pa_validation in ("valid", "trusted")))
    put("declared_ai", float(bool(event.declared_ai)))
    put("declared_ai_stated", float(event.declared_ai is not None))
    if info.width and info.height:
        long_side, short_side = max(info.width, info.height), min(info.width, info.height)
        put("log_width", np.log1p(info.width) / 8.0)
        put("log_height", np.log1p(info.height) / 8.0)
        put("aspect_ratio", long_side / max(short_side, 1))
        put("square", float(info.width == info.height))
        put("multiple_of_64", float(info.width % 64 == 0 and info.height % 64 == 0))
    put("log_duration", np.log1p(info.duration_s or 0.0) / 5.0)
    put("log_bitrate", np.log1p(info.bitrate or 0) / 16.0)
    put("frame_rate", min((info.frame_rate or 0.0) / 60.0, 4.0))
    encoder = _encoder_text(info)
    vector[SLOTS["software_family"].start + _encoder_bucket(encoder)] = 1.0
    account = event.account
    if account is not None:
        put("account_present", 1.0)
        if account.created_at is not None:
            age_days = max((event.uploaded_at - account.created_at).total_seconds() / 86400.0, 0.0)
            put("log_account_age", np.log1p(age_days) / 8.0)
            put("account_age_known", 1.0)
        for name in ("verified", "high_profile"):
            value = getattr(account, name)
            if value is not None:
                put(name, float(value))
                put(f"{name}_known", 1.0)
        if account.prior_strikes is not None:
            put("log_prior_strikes", np.log1p(max(account.prior_strikes, 0)))
            put("prior_strikes_known", 1.0)
    put("video_has_audio", float(info.media_type == "video" and info.audio_codec is not None))
    if info.capture_time is not None:
        hours = (event.uploaded_at - info.capture_time).total_seconds() / 3600.0
        put("capture_time_present", 1.0)
        put("capture_after_upload", float(hours < 0))
        put("capture_to_upload_hours", np.sign(hours) * np.log1p(abs(hours)) / 10.0)
        put("capture_on_the_hour", float(info.capture_time.minute == 0 and info.capture_time.second == 0))
    put("location_present", float(info.has_location))
    put("firmware_like_software", float(bool(info.exif_software and _FIRMWARE.search(info.exif_software))))
    string_bucket = _encoder_string_bucket(encoder)
    if string_bucket is not None:
        vector[SLOTS["software_string"].start + string_bucket] = 1.0
    put("generation_settings", float(info.generation_parameters))
    put("file_metadata_present", float(file_metadata_present(info)))
    return vector


class _ExtractMetadataDoFn(MediaDoFn):
    def __init__(self, limits: MediaLimits):
        self._limits = limits
        self._by_type = {t: Metrics.counter("features", f"media_type_{t}") for t in MEDIA_TYPES}
        self._mislabelled = Metrics.counter("features", "media_type_mislabelled")

    def process(self, blob: MediaBlob):
        info = probe_media(blob.data, self._limits)
        self._by_type[info.media_type].inc()
        # The bytes decide how the item is read; a declared type that disagrees is kept on the
        # score row (`declared_media_type`) and counted, since mislabelling can be evasion.
        if blob.event.media_type not in (None, info.media_type):
            self._mislabelled.inc()
        yield MediaFeatures(
            event=blob.event,
            sha256=blob.sha256,
            info=info,
            visual=None,
            audio=None,
            metadata_vector=metadata_vector(info, blob.event),
            extracted_at=utc_now(),
            data=blob.data,
        )


class ExtractMetadataFeatures(MediaStep):
    """MediaBlob -> MediaFeatures with `info` and `metadata_vector`; unreadable files dead-lettered."""

    DOFN = _ExtractMetadataDoFn
    STEP = "extract_metadata"
