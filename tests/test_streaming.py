"""The streaming job: its stateful stages under TestStream (watermark advances, redelivery,
expiry), and the whole job against the Pub/Sub emulator, deciding what the batch job decides."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import threading
import time
from pathlib import Path

import apache_beam as beam
import duckdb
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window
from apache_beam.utils.timestamp import Timestamp

from enforcement.policy import StrikePolicy
from enforcement.strikes import strike_for
from models.registry import CARD_FILE, SERVED_MODEL_DIR, write_card
from pipelines import batch, streaming
from schemas.records import parse_timestamp
from tools import publish_events
from training import corpus
from transforms.parse import DeduplicateEvents, parse_event
from transforms.strikes import TrackStrikesInState
from warehouse.embedded import parquet_run_counts
from warehouse.reader import open_reader

from .conftest import query_warehouse
from .test_strikes import T0, decision

POLICY = StrikePolicy({"remove": 1.0, "reduce_reach": 0.5, "label": 0.0}, window_days=90, suspend_at=2.0)


def streaming_pipeline() -> beam.Pipeline:
    options = PipelineOptions(["--runner=DirectRunner"])
    options.view_as(StandardOptions).streaming = True
    return beam.Pipeline(options=options)


def at(day: float) -> Timestamp:
    return Timestamp.from_utc_datetime(T0 + dt.timedelta(days=day))


def upload(content_id: str, day: float) -> object:
    return parse_event({"content_id": content_id, "media_uri": "/m/x.jpg", "account_id": "a1",
                        "uploaded_at": (T0 + dt.timedelta(days=day)).isoformat()})  # fmt: skip


def test_a_redelivered_event_is_skipped_and_counted_and_forgotten_after_the_horizon():
    first, again, much_later = upload("c1", 0), upload("c1", 0), upload("c1", 45)
    stream = (
        TestStream()
        .advance_watermark_to(at(0))
        .add_elements([window.TimestampedValue(first, at(0).micros / 1e6), window.TimestampedValue(upload("c2", 0), at(0).micros / 1e6)])
        .add_elements([window.TimestampedValue(again, at(0.1).micros / 1e6)])  # Pub/Sub redelivers
        .advance_watermark_to(at(40))  # past the 30-day horizon: c1 is forgotten
        .add_elements([window.TimestampedValue(much_later, at(45).micros / 1e6)])
        .advance_watermark_to_infinity()
    )  # fmt: skip
    with streaming_pipeline() as p:
        kept, skipped = p | stream | DeduplicateEvents(streaming=True)
        assert_that(kept | beam.Map(lambda e: (e.content_id, e.uploaded_at.day)), equal_to([("c1", 1), ("c2", 1), ("c1", 15)]),
                    label="kept")  # fmt: skip
        assert_that(skipped | beam.Map(lambda d: (d.content_id, d.reason)), equal_to([("c1", "duplicate_content_id")]),
                    label="skipped")  # fmt: skip


def _timed(decision_):
    return window.TimestampedValue(decision_, decision_.uploaded_at.timestamp())


def test_strikes_held_in_state_suspend_on_crossing_and_expire_across_windows():
    prior = strike_for(decision("remove", 0, account="a1"), POLICY)  # the warehouse's ledger at start
    decisions = TestStream().advance_watermark_to(at(1))
    decisions = decisions.add_elements([_timed(decision("remove", 5, account="a1"))])  # 2.0: suspended
    decisions = decisions.add_elements([_timed(decision("label", 6, account="a1"))])  # earns nothing
    decisions = decisions.advance_watermark_to(at(200))  # every strike so far has expired
    decisions = decisions.add_elements([_timed(decision("remove", 201, account="a1"))])  # 1.0 alone: no suspension
    decisions = decisions.advance_watermark_to_infinity()
    with streaming_pipeline() as p:
        ledger, suspensions, dead = {
            "prior": p | "Prior" >> beam.Create([prior]),
            "decisions": p | "Decisions" >> decisions,
        } | TrackStrikesInState(POLICY)
        assert_that(
            suspensions | beam.Map(lambda s: (s.standing.account_id, s.crossing.decision_id, s.standing.active_points)),
            equal_to([("a1", "d-remove-5", 2.0)]),
            label="suspended once",
        )
        # The ledger each update emits: the account's strikes still in force (expired ones
        # leave the state at their expiry timer).
        assert_that(
            ledger | beam.Map(lambda s: s.decision_id),
            equal_to(["d-remove-0", "d-remove-5", "d-remove-201"]),
            label="ledger",
        )
        assert_that(dead, equal_to([]), label="no dead letters")


@pytest.fixture(scope="module")
def pubsub(pubsub_emulator):
    return pubsub_emulator


@pytest.mark.slow
def test_the_streaming_job_decides_what_the_batch_job_decides(pubsub, tmp_path):
    corpus.generate_corpus(tmp_path / "uploads", count=10, seed=31, corrupt=1)
    manifest = tmp_path / "uploads" / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    # Recorded traffic replayed as live (the streaming job refuses uploads older than its
    # allowed lateness); both jobs read the same shifted events, and one is sent twice.
    live = publish_events.shift_to_now(lines, span_s=1800)
    live_manifest = tmp_path / "uploads" / "live.jsonl"  # media_uri values are relative to it
    live_manifest.write_text("\n".join([*live, live[0]]) + "\n")
    assert all(parse_timestamp(json.loads(line)["uploaded_at"], "t") > dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
               for line in live)  # fmt: skip

    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.create_topic(name="projects/t-and-s-test/topics/uploads-parity").name
    subscription = subscriber.create_subscription(
        name="projects/t-and-s-test/subscriptions/uploads-parity-job", topic=topic
    ).name
    rows = len(live) + 1
    assert publish_events.run(["--input", str(live_manifest), "--topic", topic]) == 0

    on_batch, on_stream = tmp_path / "batch", tmp_path / "stream"
    runner = f"--runner={batch.LOCAL_RUNNER}"
    assert (
        batch.run(["--input", str(live_manifest), "--warehouse", str(on_batch), "--min_cell_count", "1", runner]) == 0
    )
    assert streaming.run(["--subscription", subscription, "--warehouse", str(on_stream), "--expected_rows", str(rows),
                          "--max_run_s", "600", "--min_cell_count", "1", "--media_root", str(tmp_path)]) == 0  # fmt: skip

    for sql in (
        "select decision_id, content_id, action, rule_id, category from enforcement_decisions",
        "select event_id, target, action from enforcement_events",
        "select sor_id, decision_id, category from statements_of_reasons",
        "select distinct strike_id, decision_id, weight from strike_ledger",
        "select step, reason, count(*) from dead_letter group by all",
    ):
        assert query_warehouse(on_stream, sql) == query_warehouse(on_batch, sql), sql
    assert query_warehouse(on_batch, "select count(*) from enforcement_decisions")[0][0] == len(live) - 1  # one corrupt


def test_a_late_decision_within_the_lateness_updates_its_window_cells_in_a_new_pane():
    from transforms.transparency import AggregateTransparency

    def overall_day(cell) -> bool:
        return cell.breakdown == "overall" and cell.period_type == "day"

    on_time = [decision("remove", 0, f"d{i}") for i in range(2)]
    late = decision("remove", 0, "d-late")
    stream = (
        TestStream()
        .advance_watermark_to(at(0))
        .add_elements([_timed(d) for d in on_time])
        .advance_watermark_to(at(0.1))  # 2.4 h on: the hour window has fired its first pane
        .add_elements([_timed(late)])  # late, but within the allowed lateness
        .advance_watermark_to_infinity()
    )
    with streaming_pipeline() as p:
        cells, dead = p | stream | AggregateTransparency(1, windowing=streaming.cell_windowing(6 * 3600))
        # Accumulating panes: the late pane carries the window's whole count.
        assert_that(
            cells | beam.Filter(overall_day) | beam.Map(lambda c: c.item_count), equal_to([2, 3]), label="panes"
        )
        assert_that(dead, equal_to([]), label="no dead letters")


def test_appeals_in_the_stream_find_their_decision_reverse_it_and_take_the_strike_back():
    from enforcement.appeals import Appeal
    from transforms.appeals import ApplyAppeals, SkipRecordedAppeals

    removed = dataclasses.replace(decision("remove", 0, "d-removed", account="a1"),
                                  targets=("content_store", "notifications"))  # fmt: skip
    overturned = Appeal("d-removed", "overturned", T0 + dt.timedelta(days=1))
    early = Appeal("d-later", "upheld", T0 + dt.timedelta(days=1))  # arrives before its decision
    orphan = Appeal("d-nowhere", "overturned", T0 + dt.timedelta(days=1))
    later = decision("label", 1, "d-later", account="a2")

    def timed_appeal(appeal):
        return window.TimestampedValue(appeal, appeal.decided_at.timestamp())

    # One TestStream carries both inputs (the local runner drives one TestStream per pipeline).
    stream = TestStream().advance_watermark_to(at(0)).add_elements([_timed(removed)])
    stream = stream.advance_watermark_to(at(1)).add_elements([timed_appeal(a) for a in (overturned, early, orphan)])
    stream = stream.add_elements([timed_appeal(overturned)])  # re-sent: applied once
    stream = stream.advance_watermark_to(at(1.01)).add_elements([_timed(later)])  # then d-later's decision
    stream = stream.advance_watermark_to(at(1.2))  # past the wait: the orphan is given up on
    stream = stream.advance_watermark_to_infinity()
    with streaming_pipeline() as p:
        both = p | stream
        kept, repeated = {
            "appeals": both | "Appeals" >> beam.Filter(lambda x: isinstance(x, Appeal)),
            "recorded": p | "Recorded" >> beam.Create([]),
        } | SkipRecordedAppeals(streaming=True)
        decisions = both | "Decisions" >> beam.Filter(lambda x: not isinstance(x, Appeal))
        applied = {"appeals": kept, "decisions": decisions} | ApplyAppeals(streaming=True)
        assert_that(
            applied["outcomes"] | beam.Map(lambda o: (o.decision.decision_id, o.appeal.outcome)),
            equal_to([("d-removed", "overturned"), ("d-later", "upheld")]),
            label="outcomes",
        )
        assert_that(applied["strike_reversals"] | beam.Map(lambda r: (r[0], r[1][0])),
                    equal_to([("a1", "d-removed")]), label="strike back")  # fmt: skip
        assert_that(applied["reversals"] | beam.Map(lambda e: (e.target, e.event_type)),
                    equal_to([("content_store", "reverse"), ("notifications", "reverse")]), label="reversed")  # fmt: skip
        assert_that(applied["dead_letters"] | beam.Map(lambda d: (d.reason, d.step)),
                    equal_to([("unknown_decision", "apply_appeals")]), label="orphan")  # fmt: skip
        assert_that(repeated | beam.Map(lambda d: d.reason), equal_to(["duplicate_appeal"]), label="repeat")


def test_verdicts_in_the_stream_find_their_decision_once_and_reverse_a_removal_they_disagree_with():
    from enforcement.policy import load_policy
    from enforcement.review import Verdict
    from transforms.review import ApplyVerdicts

    policy = load_policy("policies/synthetic_media_v1.yaml")
    removed = dataclasses.replace(decision("remove", 0, "d-removed", account="a1"),
                                  targets=("content_store", "notifications"))  # fmt: skip
    when = T0 + dt.timedelta(days=1)
    disagree = Verdict("rv-1", "d-removed", False, None, "none", "rev-1", when)
    orphan = Verdict("rv-2", "d-nowhere", True, "impersonation", "remove", "rev-1", when)

    def timed_verdict(verdict):
        return window.TimestampedValue(verdict, verdict.decided_at.timestamp())

    stream = TestStream().advance_watermark_to(at(0)).add_elements([_timed(removed)])
    stream = stream.advance_watermark_to(at(1)).add_elements([timed_verdict(v) for v in (disagree, orphan)])
    stream = stream.add_elements([timed_verdict(disagree)])  # re-sent: applied once
    stream = stream.advance_watermark_to(at(1.2)).advance_watermark_to_infinity()
    with streaming_pipeline() as p:
        both = p | stream
        applied = {
            "verdicts": both | "Verdicts" >> beam.Filter(lambda x: isinstance(x, Verdict)),
            "recorded": p | "Recorded" >> beam.Create([]),
            "decisions": both | "Decisions" >> beam.Filter(lambda x: not isinstance(x, Verdict)),
        } | ApplyVerdicts(policy, streaming=True)
        assert_that(applied["decisions"] | beam.Map(lambda d: (d.supersedes, d.action, d.automated_decision)),
                    equal_to([("d-removed", "none", "not")]), label="final")  # fmt: skip
        assert_that(applied["events"] | beam.Map(lambda e: (e.target, e.event_type)),
                    equal_to([("content_store", "reverse"), ("notifications", "reverse")]), label="reversed")  # fmt: skip
        assert_that(applied["strike_reversals"] | beam.Map(lambda r: (r[0], r[1][0])),
                    equal_to([("a1", "d-removed")]), label="strike back")  # fmt: skip
        assert_that(applied["dead_letters"] | beam.Map(lambda d: (d.reason, d.step)),
                    equal_to([("unknown_decision", "apply_verdicts")]), label="orphan")  # fmt: skip
        assert_that(applied["skipped"] | beam.Map(lambda d: d.reason), equal_to(["duplicate_verdict"]), label="once")


def test_an_upload_later_than_the_allowed_lateness_is_dead_lettered_at_the_door():
    import time

    admit = streaming._AdmitInTime(3600, "admit_events")
    event = upload("c1", 0)
    assert list(admit.process(event, timestamp=Timestamp.of(time.time() - 60))) == [event]
    (late,) = admit.process(event, timestamp=Timestamp.of(time.time() - 7200))
    assert late.tag == "dead_letters"
    assert (late.value.step, late.value.reason, late.value.content_id) == (
        "admit_events",
        "later_than_allowed_lateness",
        "c1",
    )


@pytest.mark.slow
def test_the_streaming_job_writes_bigquery_with_streaming_inserts_as_the_batch_job_does(
    pubsub, bigquery_endpoint, tmp_path
):
    from warehouse.bigquery import BigQueryLocation, query_arrow

    corpus.generate_corpus(tmp_path / "uploads", count=6, seed=33, corrupt=1)
    live = publish_events.shift_to_now((tmp_path / "uploads" / "manifest.jsonl").read_text().splitlines(), span_s=600)
    live_manifest = tmp_path / "uploads" / "live.jsonl"
    live_manifest.write_text("\n".join(live) + "\n")

    from google.cloud import pubsub_v1

    topic = pubsub_v1.PublisherClient().create_topic(name="projects/t-and-s-test/topics/uploads-bq").name
    subscription = (
        pubsub_v1.SubscriberClient()
        .create_subscription(name="projects/t-and-s-test/subscriptions/uploads-bq-job", topic=topic)
        .name
    )
    assert publish_events.run(["--input", str(live_manifest), "--topic", topic]) == 0
    endpoint = bigquery_endpoint
    common = ["--bigquery_endpoint", endpoint, "--min_cell_count", "1", "--media_root", str(tmp_path)]
    assert streaming.run(["--subscription", subscription, "--warehouse", "bq://t-and-s.stream", *common,
                          "--expected_rows", str(len(live)), "--max_run_s", "600"]) == 0  # fmt: skip
    # The batch job into the embedded warehouse: test_bigquery.py shows its BigQuery rows are these.
    embedded = tmp_path / "batch"
    assert batch.run(["--input", str(live_manifest), "--warehouse", str(embedded), "--min_cell_count", "1",
                      "--media_root", str(tmp_path), f"--runner={batch.LOCAL_RUNNER}"]) == 0  # fmt: skip

    def rows(dataset: str, sql: str) -> list[tuple]:
        table = query_arrow(BigQueryLocation("t-and-s", dataset, endpoint), sql.format(dataset=f"t-and-s.{dataset}"))
        return sorted(tuple(r.values()) for r in table.to_pylist())

    for columns, table in (
        ("decision_id, action, rule_id", "enforcement_decisions"),
        ("event_id, target", "enforcement_events"),
        ("sor_id", "statements_of_reasons"),
        ("step, reason", "dead_letter"),
    ):
        streamed = rows("stream", f"select {columns} from `{{dataset}}.{table}`")
        assert streamed == query_warehouse(embedded, f"select {columns} from {table}"), table
    assert len(rows("stream", "select decision_id from `{dataset}.enforcement_decisions`")) == len(live) - 1


def _new_version(model_dir: Path, version: str) -> None:
    """Publishes every served model again under `version`, as a retraining would: the copy
    first, the card (what makes the registry choose it) last."""
    for modality in ("visual", "audio", "metadata"):
        (current,) = (model_dir / modality).iterdir()
        target = model_dir / modality / version
        shutil.copytree(current, target, ignore=shutil.ignore_patterns(CARD_FILE))
        card = json.loads((current / CARD_FILE).read_text())
        write_card(target, {**card, "version": version})


def _promote_new_version(model_dir: Path, tmp_path: Path, version: str) -> None:
    """A challenger trained as `version` (every served model again) that passed its gate,
    promoted into the registry the job serves from (`deepfake release promote`)."""
    from training import release

    challenger = tmp_path / "challenger"
    shutil.copytree(SERVED_MODEL_DIR, challenger)
    _new_version(challenger, version)
    versions = {m: version for m in ("visual", "audio", "metadata")} | {"fusion": "20261129T210000"}
    gated = tmp_path / "release.json"
    gated.write_text(json.dumps({"release_id": f"r-{version}", "verdict": "pass", "versions": versions,
                                 "challenger_dir": str(challenger), "criteria": [], "figures": {},
                                 "gate": "model-promotion@1.0.0"}))  # fmt: skip
    assert release.run(["promote", "--release", str(gated), "--model_dir", str(model_dir), "--approved_by", "owner-1",
                        "--warehouse", str(tmp_path / "registry-wh")]) == 0  # fmt: skip


def _when(condition, job: threading.Thread, what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline and job.is_alive(), what
        time.sleep(1)


@pytest.mark.slow
def test_a_model_version_and_a_removal_confirmed_mid_stream_reach_the_uploads_after_them(pubsub, tmp_path):
    """Without a restart: a model version promoted while the job runs scores the uploads after
    it; a reviewer's removal of an upload the detectors let through enters the bank, and
    the same picture re-encoded from another account matches it."""
    corpus.generate_corpus(tmp_path / "uploads", count=4, seed=41)
    lines = publish_events.shift_to_now((tmp_path / "uploads" / "manifest.jsonl").read_text().splitlines(), span_s=60)
    before, after = tmp_path / "uploads" / "before.jsonl", tmp_path / "uploads" / "after.jsonl"
    before.write_text("\n".join(lines[:2]) + "\n")
    model_dir = tmp_path / "models"
    shutil.copytree(SERVED_MODEL_DIR, model_dir)

    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topics = {}
    for name in ("uploads-refresh", "verdicts-refresh"):
        topics[name] = publisher.create_topic(name=f"projects/t-and-s-test/topics/{name}").name
        subscriber.create_subscription(name=f"projects/t-and-s-test/subscriptions/{name}-job", topic=topics[name])
    subscription, reviews = (f"projects/t-and-s-test/subscriptions/{n}-job" for n in topics)
    warehouse, run_id = tmp_path / "stream", "20260101T000000Z-refresh"
    outcome: list[int] = []
    job = threading.Thread(target=lambda: outcome.append(streaming.run([
        "--subscription", subscription, "--reviews_subscription", reviews, "--warehouse", str(warehouse),
        "--model_dir", str(model_dir), "--model_refresh_s", "1", "--bank_refresh_s", "1",
        "--expected_rows", str(len(lines) + 1), "--max_run_s", "600", "--run_id", run_id,
        "--min_cell_count", "1", "--media_root", str(tmp_path),
    ])))  # fmt: skip
    job.start()
    assert publish_events.run(["--input", str(before), "--topic", topics["uploads-refresh"]]) == 0
    first = [json.loads(line) for line in lines[:2]]
    _when(lambda: sum(n for *_, n in parquet_run_counts(str(warehouse), "media_scores", run_id, "media_type")) >= 2,
          job, "the first uploads were never scored")  # fmt: skip
    _promote_new_version(model_dir, tmp_path, "29990101T000000")

    # A reviewer removes the first upload with a picture, whatever the detectors made of it.
    def pictured() -> list[tuple]:
        try:  # what the job has written so far (its catalog is rebuilt when it stops)
            rows = open_reader(str(warehouse), live=True).query(
                "select d.content_id, d.decision_id, d.action from enforcement_decisions d join features f "
                "using (content_id) where len(f.pdq_hashes) > 0 order by d.content_id").to_pylist()  # fmt: skip
        except (duckdb.Error, FileNotFoundError):  # nothing written yet
            return []
        return [tuple(row.values()) for row in rows]

    _when(pictured, job, "the upload with a picture was never decided")
    (content_id, decision_id, action), *_ = pictured()
    assert action != "remove"
    verdict = {"review_id": "rv-live", "decision_id": decision_id, "violating": True, "action": "remove",
               "category": "synthetic_media_undisclosed", "reviewer": "rev-7",
               "decided_at": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
    publisher.publish(topics["verdicts-refresh"], json.dumps(verdict).encode()).result()
    _when(lambda: sum(n for *_, n in parquet_run_counts(str(warehouse), "bank_changes", run_id, "change")) >= 1,
          job, "the verdict never reached the bank")  # fmt: skip
    time.sleep(3)  # past --model_refresh_s and --bank_refresh_s

    # The same picture, smaller and re-compressed, from another account.
    (original,) = [event for event in first if event["content_id"] == content_id]
    from PIL import Image

    media = tmp_path / "uploads" / original["media_uri"]
    if original["media_uri"].endswith((".jpg", ".jpeg", ".png", ".webp")):
        picture = Image.open(media).convert("RGB")
        picture.resize((picture.width * 9 // 10, picture.height * 9 // 10)).save(media.with_name("repost.jpg"),
                                                                                 quality=70)  # fmt: skip
        repost_uri = str(Path(original["media_uri"]).with_name("repost.jpg"))
    else:  # a clip: posted again as it was
        repost_uri = original["media_uri"]
    repost = {**original, "content_id": "repost-live", "account_id": "another-account", "media_uri": repost_uri,
              "uploaded_at": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
    after.write_text("\n".join([*lines[2:], json.dumps(repost)]) + "\n")
    assert publish_events.run(["--input", str(after), "--topic", topics["uploads-refresh"]]) == 0
    job.join(timeout=600)
    assert outcome == [0]

    rows = query_warehouse(warehouse, "select content_id, visual_model_version, audio_model_version, metadata_model_version "
                             "from media_scores")  # fmt: skip
    assert len(rows) == len(lines) + 1
    for content_id_, *versions in rows:
        served = {v for v in versions if v is not None}
        assert served == ({"20261129T210000"} if content_id_ in {e["content_id"] for e in first}
                          else {"29990101T000000"}), content_id_  # fmt: skip
    ((verdict_decision,),) = query_warehouse(
        warehouse, f"select decision_id from enforcement_decisions where supersedes = '{decision_id}'"
    )
    matched = dict(query_warehouse(warehouse, "select content_id, hash_match from media_scores"))
    assert matched.pop("repost-live") == f"banked:reviewer_removal:{verdict_decision}"
    assert set(matched.values()) == {None}
