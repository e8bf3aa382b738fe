"""Upload-event validation and manifest reading."""

from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import CLOCK_TOLERANCE, SKIPPED, FutureTimestamp, UploadEvent, format_timestamp, not_in_future
from transforms.dead_letter import reason_of
from transforms.parse import (
    DeduplicateEvents,
    InvalidEvent,
    ParseEvents,
    RawRow,
    ReadManifest,
    check_manifest,
    manifest_format,
    parse_event,
    resolve_media_uri,
)

from .conftest import batch_pipeline

GOOD = {
    "content_id": "c1",
    "media_uri": "media/c1.mp4",
    "account_id": "a1",
    "uploaded_at": "2026-11-02T13:04:05Z",
    "media_type": "video",
    "country": "de",
    "declared_ai": "false",
    "account": {"created_at": "2024-01-01T00:00:00+01:00", "verified": True, "prior_strikes": 2},
}


def test_a_full_event_parses_with_types_and_resolved_path():
    event = parse_event(GOOD, base_uri="/data/batch")
    assert event.media_uri == "/data/batch/media/c1.mp4"
    assert event.uploaded_at == dt.datetime(2026, 11, 2, 13, 4, 5, tzinfo=dt.UTC)
    assert event.country == "DE"
    assert event.declared_ai is False
    assert event.account.verified and event.account.prior_strikes == 2
    assert event.account.created_at == dt.datetime(2023, 12, 31, 23, 0, tzinfo=dt.UTC)


def test_event_round_trips_through_its_json_form():
    event = parse_event(GOOD, base_uri="/data")
    assert parse_event(json.loads(event.to_json())) == event
    reported = parse_event({**GOOD, "notice": {"source": "trusted_flagger", "received_at": "2026-11-02T14:00:00Z"}})
    assert parse_event(json.loads(reported.to_json())) == reported


def test_a_notice_sets_the_detection_method_json_or_flattened_csv_columns():
    assert parse_event(GOOD).detection_method == "automated"
    nested = parse_event({**GOOD, "notice": {"source": "user_report", "received_at": "2026-11-02T14:00:00Z"}})
    assert nested.detection_method == "user_report"
    assert nested.notice.received_at == dt.datetime(2026, 11, 2, 14, tzinfo=dt.UTC)
    flat = parse_event({**GOOD, "notice_source": "trusted_flagger", "notice_received_at": ""})
    assert (flat.detection_method, flat.notice.received_at) == ("trusted_flagger", None)
    # What the notifier alleges (a DSA category, optionally a keyword of it), nested or flattened.
    alleged = {"source": "user_report", "category": "STATEMENT_CATEGORY_CYBER_VIOLENCE",
               "keyword": "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE"}  # fmt: skip
    assert parse_event({**GOOD, "notice": alleged}).notice.keyword == "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE"
    flat = parse_event({**GOOD, "notice_source": "user_report", "notice_category": alleged["category"]})
    assert (flat.notice.category, flat.notice.keyword) == (alleged["category"], None)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"content_id": None}, "content_id: required"),
        ({"content_id": "bad id with spaces"}, "content_id"),
        ({"account_id": ""}, "account_id: required"),
        ({"uploaded_at": "yesterday"}, "uploaded_at: 'yesterday' is not an RFC 3339"),
        ({"uploaded_at": "2026-11-02T13:04:05"}, "has no timezone"),
        ({"media_type": "hologram"}, "media_type: expected one of"),
        ({"country": "Germany"}, "country: expected an ISO 3166-1"),
        ({"declared_ai": "maybe"}, "declared_ai: expected true or false"),
        ({"account": {"prior_strikes": -1}}, "account.prior_strikes: must not be negative"),
        ({"account": "{not json"}, "account: not a JSON object"),
        ({"account": [1, 2]}, "account: expected an object"),
        ({"notice": {"source": "anonymous_tip"}}, "notice.source: expected one of"),
        ({"notice": {"source": "user_report", "received_at": "soon"}}, "notice.received_at"),
        ({"notice": "[1]"}, "notice: expected an object"),
        ({"notice": {"source": "user_report", "category": "deepfake"}}, "notice.category: expected a DSA category"),
        ({"notice": {"source": "user_report", "category": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC"}}, "notice.category"),
        (
            {"notice": {"source": "user_report", "keyword": "KEYWORD_HATE_SPEECH"}},
            "notice.keyword: .* is not a keyword",
        ),
        (
            {
                "notice": {
                    "source": "user_report",
                    "category": "STATEMENT_CATEGORY_ANIMAL_WELFARE",
                    "keyword": "KEYWORD_HATE_SPEECH",
                }
            },
            "notice.keyword",
        ),
    ],
)
def test_bad_fields_are_named_in_the_error(change, message):
    with pytest.raises(InvalidEvent, match=message):
        parse_event({**GOOD, **change})


def test_times_that_cannot_be_are_refused_beyond_the_stated_clock_tolerance():
    now = dt.datetime.now(dt.UTC)
    soon = now + CLOCK_TOLERANCE / 2  # a client clock a little fast: accepted
    assert parse_event({**GOOD, "uploaded_at": format_timestamp(soon)}).uploaded_at == soon
    tomorrow = format_timestamp(now + dt.timedelta(days=1))
    for change, field in [({"uploaded_at": tomorrow}, "uploaded_at"),
                          ({"notice": {"source": "user_report", "received_at": tomorrow}}, "notice.received_at")]:  # fmt: skip
        with pytest.raises(FutureTimestamp, match=f"{field}: .* is in the future") as refused:
            parse_event({**GOOD, **change})
        assert reason_of(refused.value) == "future_timestamp"
    with pytest.raises(FutureTimestamp, match="tolerance 5 min"):
        not_in_future(now + dt.timedelta(minutes=6), "t", now=now)
    assert not_in_future(now + dt.timedelta(minutes=4), "t", now=now)


def test_uris_resolve_against_the_manifest_directory():
    assert resolve_media_uri("a/b.jpg", "/m") == "/m/a/b.jpg"
    assert resolve_media_uri("/abs/b.jpg", "/m") == "/abs/b.jpg"
    assert resolve_media_uri("file:///abs/b.jpg", "/m") == "/abs/b.jpg"
    assert resolve_media_uri("gs://bucket/b.jpg", "/m") == "gs://bucket/b.jpg"
    assert resolve_media_uri("b.jpg", "gs://bucket/batch") == "gs://bucket/batch/b.jpg"


def test_manifest_format_from_extension_or_flag():
    assert manifest_format("x/m.jsonl") == "jsonl"
    assert manifest_format("x/m.csv") == "csv"
    assert manifest_format("x/m.parquet") == "parquet"
    assert manifest_format("x/m.txt", "csv") == "csv"
    with pytest.raises(ValueError, match="--input_format"):
        manifest_format("x/m.txt")


def _parse(rows):
    with batch_pipeline() as p:
        events, rejected = p | beam.Create(rows) | ParseEvents(base_uri="/base")
        assert_that(events | "Ids" >> beam.Map(lambda e: e.content_id), equal_to(["c1"]), label="events")
        assert_that(
            rejected | "Reasons" >> beam.Map(lambda d: (d.step, d.disposition, d.error_type)),
            equal_to(
                [
                    ("parse_events", "dead_letter", "InvalidEvent"),
                    ("parse_events", "dead_letter", "InvalidEvent"),
                    ("parse_events", SKIPPED, "blank_line"),
                ]
            ),
            label="rejected",
        )


def test_parse_events_routes_every_row_somewhere():
    _parse(
        [
            RawRow("m", text=json.dumps(GOOD)),
            RawRow("m", text="{not json"),
            RawRow("m", text=json.dumps({"content_id": "c2"})),
            RawRow("m", text="   "),
        ]
    )


def test_duplicates_keep_the_earliest_upload_and_skip_the_rest():
    first = parse_event(GOOD)
    later = parse_event({**GOOD, "uploaded_at": "2026-11-03T00:00:00Z"})
    with batch_pipeline() as p:
        kept, skipped = p | beam.Create([later, first]) | DeduplicateEvents()
        assert_that(kept, equal_to([first]), label="kept")
        assert_that(
            skipped | beam.Map(lambda d: (d.content_id, d.error_type, d.disposition)),
            equal_to([("c1", "duplicate_content_id", SKIPPED)]),
            label="skipped",
        )


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_manifests_in_each_format_read_the_same_events(tmp_path, fmt):
    rows = [dict(GOOD, content_id=f"c{i}", account=json.dumps(GOOD["account"])) for i in range(3)]
    path = tmp_path / f"manifest.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(dict(r, account=GOOD["account"])) for r in rows) + "\n")
    elif fmt == "csv":
        header = list(rows[0])
        lines = [",".join(header)]
        for r in rows:
            lines.append(",".join('"' + str(r[h]).replace('"', '""') + '"' for h in header))
        path.write_text("\n".join(lines) + "\n")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    with batch_pipeline() as p:
        events, rejected = p | ReadManifest(str(path)) | ParseEvents(base_uri=str(tmp_path))
        assert_that(
            events | beam.Map(lambda e: (e.content_id, e.account.prior_strikes, e.media_uri)),
            equal_to([(f"c{i}", 2, str(tmp_path / "media/c1.mp4")) for i in range(3)]),
            label="events",
        )
        assert_that(rejected, equal_to([]), label="nothing_rejected")


def test_a_jsonl_manifest_with_hostile_bytes_dead_letters_those_lines_and_reads_the_rest(tmp_path):
    # A byte-order mark and CRLF endings (a manifest saved on Windows) are not data; a line that
    # is not UTF-8 or is nested past the parser's depth is that row's dead letter, not the job's.
    good = [json.dumps(dict(GOOD, content_id=f"c{i}")).encode() for i in range(2)]
    lines = [b"\xef\xbb\xbf" + good[0], b'{"content_id": "\xff"}', b"[" * 5000 + b"]" * 5000, good[1]]
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    with batch_pipeline() as p:
        events, rejected = p | ReadManifest(str(path)) | ParseEvents(base_uri=str(tmp_path))
        assert_that(events | beam.Map(lambda e: e.content_id), equal_to(["c0", "c1"]), label="events")
        assert_that(
            rejected | beam.Map(lambda d: (d.error_type, d.error)),
            equal_to(
                [
                    ("InvalidEvent", "not valid UTF-8: byte 0xff at offset 16"),
                    ("InvalidEvent", "not valid JSON: nested deeper than the parser allows"),
                ]
            ),
            label="rejected",
        )


def test_a_csv_row_the_reader_refuses_is_dead_lettered_and_reading_goes_on(tmp_path):
    header = ["content_id", "media_uri", "account_id", "uploaded_at", "media_type", "country"]

    def line(**change):
        row = {**GOOD, **change}
        return ",".join(f'"{row[h]}"' for h in header)

    path = tmp_path / "manifest.csv"
    lines = [",".join(header), line(content_id="c0"), line(content_id="c1", country="x" * 200_000), line()]
    path.write_text("\n".join(lines) + "\n")
    with batch_pipeline() as p:
        events, rejected = p | ReadManifest(str(path)) | ParseEvents(base_uri=str(tmp_path))
        assert_that(events | beam.Map(lambda e: e.content_id), equal_to(["c0", "c1"]), label="events")
        assert_that(
            rejected | beam.Map(lambda d: d.error.split(":")[0]),
            equal_to([f"unreadable CSV row ({path}, line 3)"]),
            label="rejected",
        )


def test_an_input_no_row_of_which_can_be_read_fails_before_the_job_starts(tmp_path):
    with pytest.raises(ValueError, match="no files match"):
        check_manifest(str(tmp_path / "*.jsonl"))
    (tmp_path / "m.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"m\.parquet is not a readable Parquet file"):
        check_manifest(str(tmp_path / "*.parquet"))
    pq.write_table(pa.Table.from_pylist([GOOD | {"account": "{}"}]), tmp_path / "m.parquet")
    check_manifest(str(tmp_path / "*.parquet"))


def test_upload_event_is_frozen():
    event = parse_event(GOOD)
    with pytest.raises(AttributeError):
        event.content_id = "other"  # type: ignore[misc]
    assert isinstance(event, UploadEvent)


def test_replayed_traffic_carries_no_time_after_now():
    from tools.publish_events import shift_to_now

    reported = {**GOOD, "notice": {"source": "user_report", "received_at": "2026-11-04T13:04:05Z"}}  # 2 days on
    lines = [json.dumps(reported), json.dumps({**GOOD, "content_id": "c2", "uploaded_at": "2026-11-02T14:00:00Z"})]
    for line in shift_to_now(lines, span_s=60):
        parse_event(json.loads(line))  # no FutureTimestamp: the notice arrives now, not in two days
