"""Per-item resource limits and the errors that name them.

A file over a limit is not an outage: it is dead-lettered with the limit named, so an
operator can tell "too big for this job's settings" from "broken file".
"""

from __future__ import annotations

import dataclasses
import time


class MediaRejected(Exception):
    """The media cannot be processed; `reason` is a short stable code for the dead letter."""

    reason = "media_rejected"

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        if reason:
            self.reason = reason


class LimitExceeded(MediaRejected):
    """An item exceeded one of the configured per-item limits."""

    reason = "limit_exceeded"

    def __init__(self, limit: str, value: float, maximum: float, unit: str = ""):
        self.limit = limit
        super().__init__(f"{limit} exceeded: {value:g}{unit} > {maximum:g}{unit} (raise --{limit} to allow it)")


class UnsupportedMedia(MediaRejected):
    reason = "unsupported_media"


class CorruptMedia(MediaRejected):
    reason = "corrupt_media"


class UriNotAllowed(MediaRejected):
    """An event names media outside the places this job may read: a local path outside its
    media roots, a bucket it was not given, a scheme it does not fetch."""

    reason = "uri_not_allowed"


@dataclasses.dataclass(frozen=True)
class MediaLimits:
    """Bounds on what one item may cost. Defaults suit short-form uploads."""

    max_media_bytes: int = 512 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_duration_s: float = 900.0
    max_decode_s: float = 60.0
    max_fetch_s: float = 120.0
    # Media larger than this is not carried in the element: each extractor reads it from
    # storage in ranges, so a worker's memory does not grow with an upload's length.
    max_inline_bytes: int = 32 * 1024 * 1024
    # Where media may be read from (`transforms.fetch.check_allowed`). An event is input from
    # outside, so a job confines its reads: local files only under `media_roots` (none: no
    # local file), gs:// only in `media_buckets` (None: any bucket). The library default
    # leaves local reads open for code that reads files it chose itself; the jobs always set it.
    media_roots: tuple[str, ...] | None = None
    media_buckets: tuple[str, ...] | None = None

    def check_bytes(self, size: int) -> None:
        if size > self.max_media_bytes:
            raise LimitExceeded("max_media_bytes", size, self.max_media_bytes, " bytes")

    def check_pixels(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise LimitExceeded("max_pixels", width * height, self.max_pixels, " px")

    def check_duration(self, seconds: float | None) -> None:
        if seconds is not None and seconds > self.max_duration_s:
            raise LimitExceeded("max_duration_s", round(seconds, 3), self.max_duration_s, " s")

    def deadline(self) -> Deadline:
        return Deadline(self.max_decode_s)


class Deadline:
    """A decode-time budget checked between packets (a C call in flight is not interrupted)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._start = time.monotonic()

    def check(self) -> None:
        elapsed = time.monotonic() - self._start
        if elapsed > self.seconds:
            raise LimitExceeded("max_decode_s", round(elapsed, 3), self.seconds, " s")


def one_thread_per_item() -> None:
    """Makes the libraries under the job's per-item steps run on the calling thread: OpenCV,
    the BLAS and OpenMP under numpy, scipy and scikit-learn, and Arrow (which encodes and
    compresses the Parquet the warehouse writes). Each worker process handles one item per
    core, and their own thread pools only contend with it (`transforms.media.DECODE_THREADS`
    says what was measured). Process-wide: called from the media DoFns' setup."""
    import cv2
    import pyarrow
    import threadpoolctl

    cv2.setNumThreads(1)
    threadpoolctl.threadpool_limits(1)
    pyarrow.set_cpu_count(1)
