"""Stripping metadata keeps the content and removes everything about its origin; the evasion sets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from models.metadata_layout import slot
from schemas.records import MediaInfo
from training import corpus
from training.evasion import StripError, aged_account_event, bare_event, build, strip_metadata
from training.splits import split_of
from transforms.limits import MediaLimits
from transforms.metadata import file_metadata_present, metadata_vector, probe_media
from transforms.parse import parse_event


@pytest.fixture(scope="module")
def tagged_corpus(tmp_path_factory):
    """A generated corpus: cameras, software, capture times, XMP source types, in every container."""
    root = tmp_path_factory.mktemp("tagged")
    corpus.generate_corpus(root, count=40, seed=21)
    return root


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _decoded(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [
            frame.to_ndarray().reshape(-1)[:4000]
            for frame in container.decode(*[s for s in container.streams if s.type in ("audio", "video")])
        ][:20]


def test_stripped_files_say_nothing_of_their_origin_and_keep_their_content(tagged_corpus):
    limits = MediaLimits()
    described = stripped_any = 0
    for path in sorted((tagged_corpus / "media").iterdir()):
        data = path.read_bytes()
        before = probe_media(data, limits)
        stripped = strip_metadata(data)
        after = probe_media(stripped, limits)
        described += file_metadata_present(before)
        stripped_any += file_metadata_present(before) and not file_metadata_present(after)
        assert not file_metadata_present(after), path.name
        assert (after.media_type, after.width, after.height) == (before.media_type, before.width, before.height)
        if before.media_type == "image":
            np.testing.assert_array_equal(_pixels(stripped), _pixels(data))
        else:
            for a, b in zip(_decoded(stripped), _decoded(data)):
                np.testing.assert_array_equal(a, b)
    assert described >= 10 and stripped_any == described  # the corpus had tags to strip, and all went


def test_anything_else_is_refused_by_name():
    with pytest.raises(StripError):
        strip_metadata(b"not media at all" * 10)


def test_the_evasion_events_keep_only_what_the_manipulation_says():
    event = {"content_id": "c1", "media_uri": "m.jpg", "account_id": "a1", "uploaded_at": "2026-10-05T10:00:00Z",
             "declared_ai": True, "surface": "feed", "account": {"created_at": "2026-10-01T00:00:00Z"}}  # fmt: skip
    assert bare_event(event) == {k: event[k] for k in ("content_id", "media_uri", "account_id", "uploaded_at")}
    aged = parse_event(aged_account_event(event))
    assert aged.declared_ai is None and aged.surface is None
    assert aged.account.prior_strikes == 0 and (aged.uploaded_at - aged.account.created_at).days >= 6 * 365
    vector = metadata_vector(MediaInfo(media_type="image", container="jpeg"), aged)
    assert vector[slot("account_present")] == 1 and vector[slot("declared_ai_stated")] == 0


def test_the_sets_hold_the_test_split(tagged_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --out, as from the Makefile: the manifests still name files that exist
    counts = build([tagged_corpus], Path("sets"), seed=7)
    tmp_path = tmp_path / "sets"
    labels = [json.loads(line) for line in (tagged_corpus / "labels.jsonl").read_text().splitlines()]
    test = [row for row in labels if split_of(row["content_id"], 7) == "test" and row["label"] != "corrupt"]
    assert counts["original"]["real"] + counts["original"]["synthetic"] == len(test)
    assert counts["real_bare"]["real"] == sum(row["label"] == "real" for row in test)
    assert counts["synthetic_stripped"]["synthetic"] + counts["synthetic_stripped"]["unstrippable"] == sum(
        row["label"] == "synthetic" for row in test
    )
    for line in (tmp_path / "real_bare" / "manifest.jsonl").read_text().splitlines():
        assert set(json.loads(line)) == {"content_id", "media_uri", "account_id", "uploaded_at"}
    monkeypatch.chdir(tagged_corpus)
    for variant in ("original", "real_bare", "synthetic_stripped"):
        for line in (tmp_path / variant / "manifest.jsonl").read_text().splitlines():
            assert Path(json.loads(line)["media_uri"]).is_absolute()
            assert Path(json.loads(line)["media_uri"]).is_file()
