"""Fetching media: local paths, file:// URIs, limits, missing objects and transient errors."""

from __future__ import annotations

import datetime as dt

import pytest
from apache_beam.io.filesystems import FileSystems

from schemas.records import UploadEvent
from transforms import fetch
from transforms.fetch import EmptyMedia, MediaNotFound, _FetchMediaDoFn, read_media
from transforms.limits import LimitExceeded, MediaLimits


def test_local_and_file_uris_read_the_same_bytes(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 100)
    assert read_media(str(path), MediaLimits()) == b"x" * 100


def test_missing_media_is_not_found(tmp_path):
    with pytest.raises(MediaNotFound, match="no media at"):
        read_media(str(tmp_path / "nope.mp4"), MediaLimits())


def test_oversized_media_names_the_limit(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 2048)
    with pytest.raises(LimitExceeded, match="max_media_bytes"):
        read_media(str(path), MediaLimits(max_media_bytes=1024))


def test_transient_errors_are_retried_a_few_times_then_raised(tmp_path, monkeypatch):
    # A flaky object store cannot be produced on this offline machine; FileSystems.open is
    # replaced to fail like one would.
    path = tmp_path / "a.bin"
    path.write_bytes(b"ok")
    real_open, failures = FileSystems.open, {"left": 2}

    def flaky_open(uri, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("connection reset by peer")
        return real_open(uri, **kwargs)

    monkeypatch.setattr(fetch.FileSystems, "open", flaky_open)
    sleeps = []
    assert read_media(str(path), MediaLimits(), sleep=sleeps.append) == b"ok"
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]

    failures["left"] = 5
    with pytest.raises(ConnectionError):
        read_media(str(path), MediaLimits(), sleep=sleeps.append)


def test_the_dofn_fingerprints_and_refuses_empty_files(tmp_path):
    event = UploadEvent("c1", str(tmp_path / "a.bin"), "acc", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    (tmp_path / "a.bin").write_bytes(b"abc")
    dofn = _FetchMediaDoFn(MediaLimits())
    (blob,) = list(dofn.process(event))
    assert blob.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    (tmp_path / "a.bin").write_bytes(b"")
    with pytest.raises(EmptyMedia, match="empty"):
        list(dofn.process(event))
