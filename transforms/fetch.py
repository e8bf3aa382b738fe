"""Fetching media bytes for an upload: local paths, file:// and gs:// (Beam FileSystems)."""

from __future__ import annotations

import hashlib
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from schemas.records import MediaBlob, UploadEvent
from transforms.dead_letter import MediaStep
from transforms.limits import MediaLimits, MediaRejected

# Errors worth another try: the network and the object store, not a missing or bad file.
_TRANSIENT = (TimeoutError, ConnectionError)
_ATTEMPTS = 3


class MediaNotFound(MediaRejected):
    reason = "media_not_found"


class EmptyMedia(MediaRejected):
    reason = "empty_media"


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT):
        return True
    code = getattr(exc, "code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    return code in (429, 500, 502, 503, 504)


def read_media(uri: str, limits: MediaLimits, sleep=time.sleep) -> bytes:
    """Reads the media at `uri` within the byte limit, retrying transient errors a few times.

    Raises:
        MediaNotFound: nothing exists at `uri`.
        LimitExceeded: the object is larger than `limits.max_media_bytes`.
    """
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            matches = FileSystems.match([uri])[0].metadata_list
            if not matches:
                raise MediaNotFound(f"no media at {uri}")
            limits.check_bytes(matches[0].size_in_bytes)
            with FileSystems.open(uri, compression_type="uncompressed") as handle:
                data = handle.read(limits.max_media_bytes + 1)
            limits.check_bytes(len(data))  # the object may have grown since it was listed
            return data
        except MediaRejected:
            raise
        except Exception as exc:
            if isinstance(exc, FileNotFoundError) or ("not found" in str(exc).lower() and not _is_transient(exc)):
                raise MediaNotFound(f"no media at {uri}: {exc}") from exc
            if attempt == _ATTEMPTS or not _is_transient(exc):
                raise
            sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


class _FetchMediaDoFn(beam.DoFn):
    def __init__(self, limits: MediaLimits):
        self._limits = limits
        self._bytes = Metrics.counter("fetch", "bytes_read")

    def process(self, event: UploadEvent):
        data = read_media(event.media_uri, self._limits)
        if not data:
            raise EmptyMedia(f"media at {event.media_uri} is empty (0 bytes)")
        self._bytes.inc(len(data))
        yield MediaBlob(event=event, data=data, sha256=hashlib.sha256(data).hexdigest())


class FetchMedia(MediaStep):
    """UploadEvent -> MediaBlob; missing, empty or oversized media dead-lettered."""

    DOFN = _FetchMediaDoFn
    STEP = "fetch_media"
