"""What must hold with the served models (models/served) and the shipped policy, on the real job.

* Absent is normal: the same media with an optional event field absent or present gets a
  metadata score that does not move to certainty on the absence alone.
* A human recording uploaded without an account object is not removed.
* No item is removed on metadata or account context alone: real photographs dressed as a
  generator's output (its software tag, its settings chunk, its square size) uploaded from a
  brand-new account with strikes are not removed; every removal rests on content evidence.
* Stripping a synthetic item's metadata and uploading it from a clean, aged account does not
  clear content evidence that says synthetic.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.handlers import LoadedSignature, predict_probabilities
from models.registry import SERVED_MODEL_DIR, resolve_model, resolve_model_set
from schemas.records import AccountContext, Notice
from training import corpus
from training.evasion import aged_account_event, bare_event, strip_metadata
from training.metrics import roc_auc
from training.sources import BY_NAME, fetch_all, media_files
from training.thresholds import policy_thresholds
from transforms.limits import MediaLimits
from transforms.metadata import metadata_vector, probe_media
from transforms.parse import parse_event

from .conftest import query_warehouse, run_batch_on_files

CACHE = "data/sources"
POLICY = "policies/synthetic_media_v1.yaml"
UPLOADED = "2026-11-02T12:00:00Z"


@pytest.fixture(scope="module")
def recordings() -> list[Path]:
    fetch_all([BY_NAME["alsa"], BY_NAME["pocketsphinx"]], CACHE)
    return media_files(BY_NAME["alsa"], CACHE) + media_files(BY_NAME["pocketsphinx"], CACHE)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    corpus.generate_corpus(root, count=24, seed=31)
    return root


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def test_the_served_model_set_is_complete():
    model_set = resolve_model_set(SERVED_MODEL_DIR)
    assert set(model_set.models) == {"visual", "audio", "metadata"} and model_set.fusion is not None
    for deployed in model_set.models.values():
        assert "domain_gate" in deployed.card and (Path(deployed.path) / "domain.npz").exists()


# ---- absent is normal -------------------------------------------------------------------------

FULL_EVENT = {
    "content_id": "c1", "media_uri": "x", "account_id": "a1", "uploaded_at": UPLOADED, "media_type": "audio",
    "surface": "feed", "country": "FR", "declared_ai": False,
    "notice": {"source": "user_report", "received_at": UPLOADED},
    "account": {"created_at": "2024-05-01T00:00:00Z", "verified": False, "high_profile": False, "prior_strikes": 0},
}  # fmt: skip
OPTIONAL = ("media_type", "surface", "country", "declared_ai", "notice", "account", "account.created_at",
            "account.verified", "account.high_profile", "account.prior_strikes")  # fmt: skip


def _without(field: str) -> dict:
    event = json.loads(json.dumps(FULL_EVENT))
    if field.startswith("account."):
        del event["account"][field.split(".", 1)[1]]
    else:
        del event[field]
    return event


def test_an_absent_optional_field_does_not_move_the_metadata_score_to_certainty(recordings, generated):
    model = LoadedSignature(resolve_model(SERVED_MODEL_DIR, "metadata").path)
    files = recordings[:4] + sorted((generated / "media").iterdir())[:12]
    infos = [probe_media(path.read_bytes(), MediaLimits()) for path in files]
    variants = [FULL_EVENT] + [_without(field) for field in OPTIONAL] + [bare_event(FULL_EVENT)]
    vectors = np.stack(
        [metadata_vector(info, parse_event(event | {"media_type": info.media_type} if "media_type" in event else event))
         for info in infos for event in variants]
    )  # fmt: skip
    scores = predict_probabilities(model, {"metadata": vectors}).reshape(len(infos), len(variants))
    for row, path in zip(scores, files):
        present = row[0]
        for name, absent in zip([*OPTIONAL, "every optional field"], row[1:]):
            moved = abs(_logit(absent) - _logit(present))
            assert moved < 3.0, (path.name, name, present, absent)  # an odds ratio under 20, not certainty
            if present < 0.5:
                assert absent < 0.9, (path.name, name, present, absent)


# ---- the real job -----------------------------------------------------------------------------


# What the generator's toolchains write, which the metadata model knows: the software tag, a
# generator-typical square size.
FORGERIES = (("diffusers 0.27.2", 256, "PNG"), ("stable-diffusion-webui", 320, "PNG"), ("ComfyUI", 256, "WEBP"))


def _forged_photo(source: Path, target: Path, software: str, size: int, fmt: str) -> None:
    """A real photograph dressed as a generator's output: square, the tool's name in its EXIF."""
    with Image.open(source) as image:
        side = min(image.size)
        crop = image.convert("RGB").crop((0, 0, side, side)).resize((size, size))
    exif = Image.Exif()
    exif[0x0131] = software
    crop.save(target, fmt, exif=exif)


@pytest.fixture(scope="module")
def job(tmp_path_factory, recordings, generated):
    root = tmp_path_factory.mktemp("served_job")
    media = root / "media"
    media.mkdir()
    events, kinds = [], {}

    def add(content_id: str, path: Path, kind: str, **fields) -> None:
        events.append({"content_id": content_id, "media_uri": str(path.resolve()), "account_id": f"acct-{content_id}",
                       "uploaded_at": UPLOADED, **fields})  # fmt: skip
        kinds[content_id] = kind

    fresh = {"created_at": "2026-11-02T10:00:00Z"}  # two hours old
    for i, path in enumerate(p for p in recordings if p.suffix == ".wav"):
        add(f"rec-bare-{i}", path, "human_recording")
        add(f"rec-acct-{i}", path, "human_recording", account=FULL_EVENT["account"], declared_ai=False)
    import matplotlib
    import sklearn

    photos = [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]
    photos += sorted((Path(sklearn.__file__).parent / "datasets" / "images").glob("*.jpg"))
    for i, photo in enumerate(photos):
        for k, (software, size, fmt) in enumerate(FORGERIES):
            target = media / f"forged-{i}-{k}.{fmt.lower()}"
            _forged_photo(photo, target, software, size, fmt)
            add(f"forged-{i}-{k}", target, "forged_metadata", account=fresh)
    labels = {r["content_id"]: r for r in map(json.loads, (generated / "labels.jsonl").read_text().splitlines())}
    for line in (generated / "manifest.jsonl").read_text().splitlines():
        event = json.loads(line)
        content_id, original = event["content_id"], generated / event["media_uri"]
        if labels[content_id]["label"] == "synthetic":
            context = {
                k: v for k, v in event.items() if k not in ("content_id", "media_uri", "account_id", "uploaded_at")
            }
            add(f"orig-{content_id}", original, "synthetic_original", **context)
            stripped = media / f"stripped-{original.name}"
            stripped.write_bytes(strip_metadata(original.read_bytes()))
            add(
                f"stripped-{content_id}",
                stripped,
                "synthetic_stripped_aged",
                account=aged_account_event(event)["account"],
            )
        else:
            add(f"bare-{content_id}", original, "real_bare")
    # The recordings come from the package cache, outside the job's folder: each folder named.
    warehouse = run_batch_on_files(root, events, "--policy", POLICY)
    rows = query_warehouse(
        warehouse,
        "select s.content_id, s.content_score, s.fused_score, s.metadata_score, s.hash_match, d.action, d.rule_id "
        "from media_scores s join enforcement_decisions d using (content_id)",
    )
    return {"rows": {r[0]: r[1:] for r in rows}, "kinds": kinds, "events": len(events), "warehouse": warehouse}


def test_every_upload_of_the_job_was_scored(job):
    assert len(job["rows"]) == job["events"]


def test_a_human_recording_without_an_account_is_not_removed(job):
    recordings = {cid: row for cid, row in job["rows"].items() if job["kinds"][cid] == "human_recording"}
    assert len(recordings) >= 20
    removed = {cid: row for cid, row in recordings.items() if row[4] == "remove"}
    assert not removed, removed


def test_no_item_is_removed_on_metadata_or_account_context_alone(job):
    remove_at = policy_thresholds(POLICY)["remove"]
    for content_id, (content, _fused, _metadata, hash_match, action, rule) in job["rows"].items():
        if action == "remove":  # every removal rests on content evidence or a banked hash
            assert hash_match is not None or (content is not None and content >= remove_at), (content_id, rule)
    forged = {cid: row for cid, row in job["rows"].items() if job["kinds"][cid] == "forged_metadata"}
    assert len(forged) == 9 and all(row[4] != "remove" for row in forged.values()), forged
    # The metadata model was sure these were a generator's output; that alone removed nothing.
    assert min(row[2] for row in forged.values()) > 0.9, forged


def test_stripping_metadata_and_an_aged_account_do_not_clear_content_evidence(job):
    remove_at = policy_thresholds(POLICY)["remove"]
    pairs = [(cid, f"orig-{cid[len('stripped-'):]}") for cid, kind in job["kinds"].items()
             if kind == "synthetic_stripped_aged"]  # fmt: skip
    assert pairs
    for stripped, original in pairs:
        content_after, content_before = job["rows"][stripped][0], job["rows"][original][0]
        # The content is the same bytes: its evidence is the same (to rounding), and so is removal.
        if content_before is not None and content_after is not None:
            assert abs(content_after - content_before) < 0.02, (stripped, content_before, content_after)
        if content_before is not None and content_before >= remove_at:
            assert job["rows"][stripped][4] == "remove", (stripped, job["rows"][stripped])


def test_the_outcomes_report_reads_back_what_the_job_decided(job):
    from training.outcomes import outcomes

    synthetic_kinds = ("synthetic_original", "synthetic_stripped_aged")
    labels = {
        cid: {"label": "synthetic" if kind in synthetic_kinds else "real", "source": kind}
        for cid, kind in job["kinds"].items()
    }
    report = outcomes(job["warehouse"], labels, policy_thresholds(POLICY))
    assert report["scored"] == job["events"] and not report["not_scored"]
    by_label = report["by_label"]
    assert by_label["real"]["items"] + by_label["synthetic"]["items"] == job["events"]
    removed_real = sum(1 for cid, row in job["rows"].items() if row[4] == "remove" and labels[cid]["label"] == "real")
    assert by_label["real"]["actions"].get("remove", 0) == removed_real
    assert set(report["by_source"]) == set(job["kinds"].values())
    # Every synthetic item against each real source alone: its content AUC is the one computed here.
    synthetic = [cid for cid in labels if labels[cid]["label"] == "synthetic"]
    real_sources = {v["source"] for v in labels.values() if v["label"] == "real"}
    assert set(report["auc_against_each_real_source"]) == real_sources
    for source, figures in report["auc_against_each_real_source"].items():
        real = [cid for cid in labels if labels[cid]["source"] == source]
        scores = [job["rows"][cid][0] or 0.0 for cid in real + synthetic]
        expected = roc_auc(np.r_[np.zeros(len(real)), np.ones(len(synthetic))].astype(bool), np.asarray(scores))
        assert figures["items"] == len(real) and figures["content"] == pytest.approx(expected), source


def test_the_account_context_parses_absent_fields_as_unknown():
    event = parse_event(_without("account.verified"))
    assert event.account.verified is None and event.account.created_at is not None
    assert parse_event(bare_event(FULL_EVENT)).account is None
    assert dataclasses.replace(event, account=AccountContext()).verified is False  # unknown reads as not verified
    assert parse_event(FULL_EVENT).notice == Notice("user_report", dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC))
