"""Fetching media: local paths, file:// URIs, limits, missing objects and transient errors."""

from __future__ import annotations

import datetime as dt
import io
import os
import time
import types
import urllib.parse

import pytest

from schemas.records import UploadEvent
from transforms import fetch
from transforms.fetch import EmptyMedia, MediaNotFound, MediaUnreadable, _FetchMediaDoFn, read_media
from transforms.limits import LimitExceeded, MediaLimits


def test_local_and_file_uris_read_the_same_bytes(tmp_path):
    path = tmp_path / "a b%.bin"
    path.write_bytes(b"x" * 100)
    assert read_media(str(path), MediaLimits()) == b"x" * 100
    assert read_media("file://" + urllib.parse.quote(str(path)), MediaLimits()) == b"x" * 100


def test_media_over_the_inline_size_is_fingerprinted_and_left_in_storage(tmp_path):
    import hashlib

    from schemas.records import StoredMedia

    path = tmp_path / "long video.mp4"
    data = os.urandom(3 * 1024 + 5)
    path.write_bytes(data)
    limits = MediaLimits(max_inline_bytes=1024)
    uri = "file://" + urllib.parse.quote(str(path))
    stored = read_media(uri, limits)
    assert stored == StoredMedia(uri, len(data), hashlib.sha256(data).hexdigest())
    assert read_media(str(path), MediaLimits()) == data  # under the inline size: the bytes
    event = UploadEvent("c1", str(path), "acc", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    blob = next(_FetchMediaDoFn(limits).process(event))
    assert (
        blob.data == StoredMedia(str(path), len(data), blob.sha256) and blob.sha256 == hashlib.sha256(data).hexdigest()
    )
    with pytest.raises(LimitExceeded, match="max_media_bytes"):
        read_media(str(path), MediaLimits(max_inline_bytes=1024, max_media_bytes=2048))


@pytest.mark.parametrize("kind", ["directory", "fifo", "device", "symlink loop"])
def test_what_is_not_a_regular_file_is_refused_without_reading(tmp_path, kind):
    # A FIFO with no writer would block open() forever; /dev/zero would be read to the limit.
    if kind == "directory":
        target = str(tmp_path)
    elif kind == "fifo":
        target = str(tmp_path / "pipe")
        os.mkfifo(target)
    elif kind == "device":
        target = "/dev/zero"
    else:
        target = str(tmp_path / "loop")
        os.symlink(target, target)
    with pytest.raises(MediaUnreadable, match=r"not a media file|cannot be reached"):
        read_media(target, MediaLimits())


def test_schemes_the_job_does_not_fetch_are_refused_by_name():
    with pytest.raises(MediaUnreadable, match="cannot fetch http://"):
        read_media("http://example.com/a.jpg", MediaLimits())


def test_a_remote_store_that_does_not_answer_costs_max_fetch_s_not_a_worker(monkeypatch):
    # No route to a store exists offline, and the real client retries for minutes before it
    # gives up: FileSystems.match is replaced by one that hangs.
    monkeypatch.setattr(fetch.FileSystems, "match", lambda uris: time.sleep(30))
    start = time.monotonic()
    with pytest.raises(LimitExceeded, match="max_fetch_s"):
        read_media("gs://bucket/a.mp4", MediaLimits(max_fetch_s=0.3))
    assert time.monotonic() - start < 5


def test_missing_media_is_not_found(tmp_path):
    with pytest.raises(MediaNotFound, match="no media at"):
        read_media(str(tmp_path / "nope.mp4"), MediaLimits())


def test_oversized_media_names_the_limit(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 2048)
    with pytest.raises(LimitExceeded, match="max_media_bytes"):
        read_media(str(path), MediaLimits(max_media_bytes=1024))


def test_transient_errors_are_retried_a_few_times_then_raised(monkeypatch):
    # A flaky object store cannot be produced on this offline machine; FileSystems.match and
    # FileSystems.open are replaced by ones that behave like one.
    listing = [types.SimpleNamespace(metadata_list=[types.SimpleNamespace(size_in_bytes=2)])]
    failures = {"left": 2}

    def flaky_open(uri, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("connection reset by peer")
        return io.BytesIO(b"ok")

    monkeypatch.setattr(fetch.FileSystems, "match", lambda uris: listing)
    monkeypatch.setattr(fetch.FileSystems, "open", flaky_open)
    sleeps = []
    assert read_media("gs://bucket/a.bin", MediaLimits(), sleep=sleeps.append) == b"ok"
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]

    failures["left"] = 5
    with pytest.raises(ConnectionError):
        read_media("gs://bucket/a.bin", MediaLimits(), sleep=sleeps.append)


def test_the_dofn_fingerprints_and_refuses_empty_files(tmp_path):
    event = UploadEvent("c1", str(tmp_path / "a.bin"), "acc", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    (tmp_path / "a.bin").write_bytes(b"abc")
    dofn = _FetchMediaDoFn(MediaLimits())
    (blob,) = list(dofn.process(event))
    assert blob.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    (tmp_path / "a.bin").write_bytes(b"")
    with pytest.raises(EmptyMedia, match="empty"):
        list(dofn.process(event))


def test_a_job_reads_local_media_only_under_its_roots_with_symlinks_resolved_first(tmp_path):
    from transforms.limits import UriNotAllowed

    root, outside = tmp_path / "media", tmp_path / "elsewhere"
    root.mkdir(), outside.mkdir()
    (root / "ok.bin").write_bytes(b"ok")
    (outside / "secret.bin").write_bytes(b"secret")
    (root / "link.bin").symlink_to(outside / "secret.bin")  # inside by name, outside in fact
    (tmp_path / "media-other").mkdir()  # a sibling whose name starts like the root
    (tmp_path / "media-other" / "x.bin").write_bytes(b"x")
    limits = MediaLimits(media_roots=(str(root),))
    assert read_media(str(root / "ok.bin"), limits) == b"ok"
    assert read_media("file://" + str(root / "ok.bin"), limits) == b"ok"
    for refused in (
        str(outside / "secret.bin"),
        str(root / "link.bin"),
        str(root / ".." / "elsewhere" / "secret.bin"),
        str(tmp_path / "media-other" / "x.bin"),
        "/etc/passwd",
        "file:///etc/shadow",
        "http://127.0.0.1:1/x.jpg",
        "s3://bucket/x.jpg",
    ):
        with pytest.raises(UriNotAllowed):
            read_media(refused, limits)
    # No root at all (the streaming job's default): no local file is read.
    with pytest.raises(UriNotAllowed, match="--media_root"):
        read_media(str(root / "ok.bin"), MediaLimits(media_roots=()))


def test_gs_media_only_from_the_configured_buckets_where_set():
    from transforms.fetch import check_allowed
    from transforms.limits import UriNotAllowed

    check_allowed("gs://uploads-eu/a.jpg", MediaLimits(media_roots=()))  # any bucket unless given
    check_allowed("gs://uploads-eu/a.jpg", MediaLimits(media_roots=(), media_buckets=("uploads-eu",)))
    with pytest.raises(UriNotAllowed, match="bucket 'other'"):
        check_allowed("gs://other/a.jpg", MediaLimits(media_roots=(), media_buckets=("uploads-eu",)))


def test_an_event_naming_a_file_outside_the_roots_is_dead_lettered_before_it_is_opened(tmp_path):
    """The watched path is a FIFO outside the root: a reader opening it would be seen by the
    watcher's non-blocking open for writing, and the stat check for FIFOs would name another
    reason. Neither happens: the URI is refused by where it is."""
    import threading

    root = tmp_path / "media"
    root.mkdir()
    watched = tmp_path / "watched.fifo"
    os.mkfifo(watched)
    opened, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            try:
                fd = os.open(watched, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody has it open for reading
                time.sleep(0.005)
                continue
            opened.append(True)
            os.close(fd)
            return

    from transforms.dead_letter import Guarded

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    limits = MediaLimits(media_roots=(str(root),))
    try:
        for uri in (str(watched), "file://" + str(watched), "/etc/passwd"):
            event = UploadEvent("c1", uri, "acc", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
            guarded = Guarded(_FetchMediaDoFn(limits), "fetch_media")
            guarded.setup()
            (out,) = guarded.process(event)
            assert out.tag == "dead_letters" and out.value.reason == "uri_not_allowed", uri
    finally:
        stop.set()
        watcher.join()
    assert not opened
