"""An upload whose event declares one media type and whose bytes are another."""

from __future__ import annotations

import datetime as dt
import hashlib

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.util import assert_that, equal_to

from schemas import validate_row
from schemas.records import AccountContext, MediaBlob, ModalityScore, ScoredMedia, UploadEvent
from transforms.limits import MediaLimits
from transforms.metadata import ExtractMetadataFeatures, probe_media

from .conftest import audio_bytes, batch_pipeline, image_bytes

NOW = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def _blob(content_id: str, declared: str | None, data: bytes) -> MediaBlob:
    event = UploadEvent(
        content_id, f"/{content_id}", "a1", NOW, media_type=declared, account=AccountContext(created_at=NOW)
    )
    return MediaBlob(event, data, hashlib.sha256(data).hexdigest())


def _types(features):
    return features.content_id, features.event.media_type, features.info.media_type


def test_the_bytes_decide_the_type_and_a_mislabel_is_counted():
    blobs = [
        _blob("sound-sent-as-image", "image", audio_bytes()),
        _blob("honest-image", "image", image_bytes()),
        _blob("undeclared", None, image_bytes()),
    ]
    pipeline = batch_pipeline()
    features, dead = pipeline | beam.Create(blobs) | ExtractMetadataFeatures(MediaLimits())
    assert_that(
        features | beam.Map(_types),
        equal_to(
            [
                ("sound-sent-as-image", "image", "audio"),
                ("honest-image", "image", "image"),
                ("undeclared", None, "image"),
            ]
        ),
    )
    assert_that(dead, equal_to([]), label="NothingDeadLettered")
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name("media_type_mislabelled"))["counters"]
    assert sum(c.committed for c in counters) == 1


def test_the_score_row_keeps_both_types():
    blob = _blob("sound-sent-as-image", "image", audio_bytes())
    scored = ScoredMedia(
        event=blob.event,
        sha256=blob.sha256,
        info=probe_media(blob.data, MediaLimits()),
        modalities_present=("audio",),
        scores=(ModalityScore("audio", 0.3, "audio_detector", "v1"),),
        fused_score=0.3,
        fusion_method="logit_mean",
        fusion_version="1",
        scored_at=NOW,
    )
    row = validate_row("media_scores", scored.to_row())
    assert (row["media_type"], row["declared_media_type"]) == ("audio", "image")
