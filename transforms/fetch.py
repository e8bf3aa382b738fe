"""Fetching media bytes for an upload: local paths, file:// and gs:// (Beam FileSystems).

A manifest row or a message can point anywhere, so a job confines what it reads
(`check_allowed`): local files only under its media roots (symlinks resolved first), gs://
only in its buckets where given, no other scheme; anything else is dead-lettered
`uri_not_allowed` without being opened. A local path must also be a regular file: a FIFO would
block the worker forever on open, /dev/zero would be read to the byte limit. A remote read runs
under `--max_fetch_s`: a store that cannot be reached (no route, no DNS, a client retrying for
minutes) costs one item that long, not a worker. Any other scheme is refused by name.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
import urllib.parse
from typing import BinaryIO

from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from schemas.records import MediaBlob, StoredMedia, UploadEvent
from transforms.dead_letter import MediaDoFn, MediaStep
from transforms.limits import LimitExceeded, MediaLimits, MediaRejected, UriNotAllowed
from transforms.media import local_path, media_size

# Errors worth another try: the network and the object store, not a missing or bad file.
_TRANSIENT = (TimeoutError, ConnectionError)
_ATTEMPTS = 3


class MediaNotFound(MediaRejected):
    reason = "media_not_found"


class EmptyMedia(MediaRejected):
    reason = "empty_media"


class MediaUnreadable(MediaRejected):
    """The URI names something that is not media bytes to read: a directory, a device, a pipe,
    a scheme this job does not fetch, a file it may not open."""

    reason = "media_unreadable"


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT):
        return True
    code = getattr(exc, "code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    return code in (429, 500, 502, 503, 504)


def _inside(path: str, root: str) -> bool:
    root = os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_allowed(uri: str, limits: MediaLimits) -> None:
    """Refuses a URI outside the places `limits` lets the job read (`media_roots`,
    `media_buckets`), before anything at it is opened or looked at; a symlink is resolved
    first, so one inside a root cannot lead outside it. Unconfined limits (both None) allow
    everything, as a library call on a file the caller chose.

    Raises:
        UriNotAllowed: names the URI and the flag that would allow it.
    """
    if limits.media_roots is None and limits.media_buckets is None:
        return
    path = local_path(uri)
    if path is not None:
        resolved = os.path.realpath(path)
        if not any(_inside(resolved, root) for root in limits.media_roots or ()):
            where = ", ".join(limits.media_roots or ()) or "no local media root is configured"
            raise UriNotAllowed(f"{path} is outside the media roots ({where}): give its folder with --media_root")
        return
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() != "gs":
        raise UriNotAllowed(f"{parts.scheme}:// media is not read by this job (local paths under --media_root, gs://)")
    if limits.media_buckets is not None and parts.netloc not in limits.media_buckets:
        raise UriNotAllowed(f"bucket {parts.netloc!r} is not one of --media_bucket {', '.join(limits.media_buckets)}")


def read_media(uri: str, limits: MediaLimits, sleep=time.sleep) -> bytes | StoredMedia:
    """Reads the media at `uri` within the byte limit: its bytes, or, over
    `limits.max_inline_bytes`, its fingerprint (size and SHA-256, read through in blocks)
    and where it is, for each extractor to read it from there.

    Local paths and file:// URIs are read directly (regular files only); other schemes go
    through Beam's FileSystems (gs://, and whatever else is installed), retrying transient
    errors a few times, all within `limits.max_fetch_s`.

    Raises:
        UriNotAllowed: `uri` is outside the places `limits` allows (`check_allowed`).
        MediaNotFound: nothing exists at `uri`.
        MediaUnreadable: `uri` is not a regular file, or its scheme is not one this job reads.
        LimitExceeded: the object is larger than `limits.max_media_bytes`, or fetching it
            took longer than `limits.max_fetch_s`.
    """
    check_allowed(uri, limits)
    path = local_path(uri)
    if path is not None:
        return _read_local(uri, path, limits)
    parts = urllib.parse.urlsplit(uri)
    try:
        FileSystems.get_filesystem(uri)
    except ValueError as exc:
        raise MediaUnreadable(
            f"cannot fetch {parts.scheme}:// URIs: this job reads local paths, file:// and gs://"
        ) from exc
    return _within_deadline(lambda: _read_remote(uri, limits, sleep), limits.max_fetch_s)


_BLOCK_BYTES = 8 * 1024 * 1024


def _fingerprint(uri: str, handle: BinaryIO, limits: MediaLimits) -> StoredMedia:
    """Reads `handle` through in blocks (never whole): its size and SHA-256, within the byte limit."""
    digest, size = hashlib.sha256(), 0
    while block := handle.read(_BLOCK_BYTES):
        size += len(block)
        limits.check_bytes(size)
        digest.update(block)
    return StoredMedia(uri=uri, size=size, sha256=digest.hexdigest())


def _read_local(uri: str, path: str, limits: MediaLimits) -> bytes | StoredMedia:
    try:
        status = os.stat(path)
    except FileNotFoundError as exc:
        raise MediaNotFound(f"no media at {path}") from exc
    except OSError as exc:  # a symlink loop, a name too long, a directory we may not enter
        raise MediaUnreadable(f"media at {path} cannot be reached: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(status.st_mode):
        kind = "directory" if stat.S_ISDIR(status.st_mode) else "device, pipe or socket"
        raise MediaUnreadable(f"{path} is a {kind}, not a media file")
    limits.check_bytes(status.st_size)
    try:
        with open(path, "rb") as handle:
            if status.st_size > limits.max_inline_bytes:
                return _fingerprint(uri, handle, limits)
            data = handle.read(limits.max_media_bytes + 1)
    except OSError as exc:
        raise MediaUnreadable(f"media at {path} cannot be read: {exc.strerror or exc}") from exc
    limits.check_bytes(len(data))  # the file may have grown since it was looked at
    return data


def _read_remote(uri: str, limits: MediaLimits, sleep) -> bytes | StoredMedia:
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            matches = FileSystems.match([uri])[0].metadata_list
            if not matches:
                raise MediaNotFound(f"no media at {uri}")
            limits.check_bytes(matches[0].size_in_bytes)
            with FileSystems.open(uri, compression_type="uncompressed") as handle:
                if matches[0].size_in_bytes > limits.max_inline_bytes:
                    return _fingerprint(uri, handle, limits)
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


def _within_deadline(read, seconds: float) -> bytes | StoredMedia:
    """Runs `read` in a daemon thread and waits at most `seconds`. A client stuck past the
    deadline cannot be interrupted from Python; its thread is abandoned (daemon: it does not
    hold the worker at exit) and the item is dead-lettered naming the limit."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["data"] = read()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    start = time.monotonic()
    thread = threading.Thread(target=run, name="fetch-media", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise LimitExceeded("max_fetch_s", round(time.monotonic() - start, 3), seconds, " s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["data"]


def fetch_media(event: UploadEvent, limits: MediaLimits) -> MediaBlob:
    """An upload's media as the job carries it: its bytes and their SHA-256, or, over
    `limits.max_inline_bytes`, its fingerprint and where it is (`read_media`).

    Raises:
        EmptyMedia: the file holds no bytes. And whatever `read_media` raises.
    """
    media = read_media(event.media_uri, limits)
    if isinstance(media, StoredMedia):
        return MediaBlob(event=event, data=media, sha256=media.sha256)
    if not media:
        raise EmptyMedia(f"media at {event.media_uri} is empty (0 bytes)")
    return MediaBlob(event=event, data=media, sha256=hashlib.sha256(media).hexdigest())


class _FetchMediaDoFn(MediaDoFn):
    def __init__(self, limits: MediaLimits):
        self._limits = limits
        self._bytes = Metrics.counter("fetch", "bytes_read")
        self._stored = Metrics.counter("fetch", "read_from_storage")  # over --max_inline_bytes: not carried

    def process(self, event: UploadEvent):
        blob = fetch_media(event, self._limits)
        self._bytes.inc(media_size(blob.data))
        if isinstance(blob.data, StoredMedia):
            self._stored.inc()
        yield blob


class FetchMedia(MediaStep):
    """UploadEvent -> MediaBlob; missing, empty or oversized media dead-lettered."""

    DOFN = _FetchMediaDoFn
    STEP = "fetch_media"
