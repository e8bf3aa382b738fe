"""The streaming job against the Pub/Sub emulator when things go wrong: killed mid-stream,
stopped by a signal, fed messages that would jam a subscription. Every upload must end up
decided or dead-lettered exactly once in what people read, as an uninterrupted run decides."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import duckdb
import pytest

from pipelines import batch
from pipelines.intake import snapshot_path
from tools import publish_events
from training import corpus
from transforms.messages import (
    DeliveryAttemptsExceeded,
    InvalidEventTime,
    MessageTooLarge,
    admit_message,
    delivery_of,
)

from .conftest import query_warehouse

REPO = Path(__file__).resolve().parent.parent
PROJECT = "t-and-s-test"


def message(body: bytes, message_id: str = "m1", **attributes) -> types.SimpleNamespace:
    return types.SimpleNamespace(data=body, attributes=attributes, message_id=message_id,
                                 publish_time=dt.datetime.now(dt.UTC))  # fmt: skip


def test_the_door_refuses_what_would_jam_the_job_and_names_the_message():
    good = message(b'{"content_id": "c1"}', uploaded_at="2026-12-01T00:00:00Z")
    delivery = delivery_of(good, "projects/p/subscriptions/s", {}, 1024)
    assert (delivery.content_id, delivery.attempt, delivery.size_bytes) == ("c1", 1, 20)
    row = admit_message(good, delivery, "uploaded_at", 1024, 5)
    assert (row.message_id, row.text) == ("m1", '{"content_id": "c1"}')
    big = message(b"x" * 2048)
    with pytest.raises(MessageTooLarge, match="2048 bytes"):
        admit_message(big, delivery_of(big, "s", {}, 1024), "uploaded_at", 1024, 5)
    yesterday = message(b"{}", uploaded_at="yesterday")
    with pytest.raises(InvalidEventTime):
        admit_message(yesterday, delivery_of(yesterday, "s", {}, 1024), "uploaded_at", 1024, 5)
    # Delivered five times already without an outcome: the sixth is its dead letter.
    again = delivery_of(good, "s", {"m1": 5}, 1024)
    with pytest.raises(DeliveryAttemptsExceeded, match="5 times"):
        admit_message(good, again, "uploaded_at", 1024, 5)


def test_a_refused_message_is_a_dead_letter_with_its_id_and_its_payload():
    from transforms.messages import refused

    big = message(b'{"content_id": "c9", "x": "' + b"y" * 100 + b'"}', "m9")
    letter = refused(big, delivery_of(big, "s", {}, 64), MessageTooLarge("too large"), "read_events")
    assert (letter.message_id, letter.content_id, letter.reason, letter.step) == (
        "m9",
        "c9",
        "message_too_large",
        "read_events",
    )
    assert letter.payload.startswith('{"content_id": "c9"')


@pytest.fixture(scope="module")
def pubsub(pubsub_emulator):
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()


def _topic(pubsub, name: str) -> tuple[str, str]:
    publisher, subscriber = pubsub
    topic = publisher.create_topic(name=f"projects/{PROJECT}/topics/{name}").name
    subscription = subscriber.create_subscription(name=f"projects/{PROJECT}/subscriptions/{name}-job",
                                                  topic=topic).name  # fmt: skip
    return topic, subscription


def _count(warehouse: Path, sql: str, table: str) -> int:
    """`sql` over every run's Parquet files of `table` ({} names it), 0 while there are none."""
    try:
        with duckdb.connect() as con:
            return con.sql(
                sql.format(f"read_parquet('{warehouse / table}/*.parquet', union_by_name = true)")
            ).fetchall()[0][0]
    except duckdb.Error:
        return 0


def _start(subscription: str, warehouse: Path, media: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipelines.streaming", "--subscription", subscription, "--warehouse",
               str(warehouse), "--media_root", str(media), "--min_cell_count", "1", *extra]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _when(condition, job: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert job.poll() is None, job.stdout.read()
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.5)


@pytest.mark.slow
def test_killed_then_interrupted_the_job_decides_every_upload_once_as_an_uninterrupted_run(pubsub, tmp_path):
    corpus.generate_corpus(tmp_path / "uploads", count=12, seed=51, corrupt=1)
    manifest = tmp_path / "uploads" / "manifest.jsonl"
    live = tmp_path / "uploads" / "live.jsonl"
    live.write_text("\n".join(publish_events.shift_to_now(manifest.read_text().splitlines(), span_s=900)) + "\n")
    uploads = len(live.read_text().splitlines())
    topic, subscription = _topic(pubsub, "uploads-crash")
    assert publish_events.run(["--input", str(live), "--topic", topic]) == 0
    reference = tmp_path / "reference"  # what an uninterrupted run decides
    assert batch.run(["--input", str(live), "--warehouse", str(reference), "--min_cell_count", "1",
                      f"--runner={batch.LOCAL_RUNNER}"]) == 0  # fmt: skip

    stream, media = tmp_path / "stream", tmp_path / "uploads"

    # Rows written over every run (a replay writes its uploads again): each kill point is
    # progress of the run being killed.
    def scored() -> int:
        return _count(stream, "select count(*) from {}", "media_scores")

    # kill -9 as soon as the first uploads are scored.
    job = _start(subscription, stream, media, "--max_run_s", "600")
    _when(lambda: scored() >= 2, job)
    job.kill()
    job.wait()
    # Ctrl-C mid-stream, while it replays what the killed run read: a clean stop, exit 0,
    # what it read written.
    before = scored()
    job = _start(subscription, stream, media, "--max_run_s", "600")
    _when(lambda: scored() >= before + 3, job)
    job.send_signal(signal.SIGINT)
    out, _ = job.communicate(timeout=300)
    assert job.returncode == 0, out
    assert "SIGINT received" in out
    assert not list((stream / "decision_log").glob("*.tmp"))
    # Then to the end.
    job = _start(subscription, stream, media, "--expected_rows", str(uploads), "--max_run_s", "600")
    out, _ = job.communicate(timeout=600)
    assert job.returncode == 0, out
    (line,) = [line for line in out.splitlines() if line.startswith(f"subscription {subscription}")]
    assert f"messages {uploads} " in line and "[balanced]" in line and "LOST" not in line, line

    for sql in (
        "select decision_id, content_id, action, rule_id from enforcement_decisions",
        "select event_id, target, action from enforcement_events",
        "select sor_id, decision_id from statements_of_reasons",
        "select strike_id, decision_id, weight, reversed_at from strike_ledger_current",
        "select distinct step, reason, content_id from dead_letter",
    ):
        assert query_warehouse(stream, sql) == query_warehouse(reference, sql), sql
    # Every upload once: decided, or dead-lettered, never both.
    decided_ids = {
        c for (c,) in query_warehouse(stream, "select content_id from enforcement_decisions where content_id <> ''")
    }
    dead_ids = {c for (c,) in query_warehouse(stream, "select distinct content_id from dead_letter")}
    assert len(decided_ids) + len(dead_ids) == uploads and not decided_ids & dead_ids


@pytest.mark.slow
def test_poison_messages_are_dead_lettered_and_the_uploads_behind_them_decided(pubsub, tmp_path):
    corpus.generate_corpus(tmp_path / "uploads", count=3, seed=52)
    manifest = tmp_path / "uploads" / "manifest.jsonl"
    lines = publish_events.shift_to_now(manifest.read_text().splitlines(), span_s=300)
    good = publish_events.event_messages(manifest, lines=lines)
    topic, subscription = _topic(pubsub, "uploads-poison")
    padding = "x" * (2 * 1024 * 1024)
    poison = [
        # Two 2 MiB messages: together over the emulator client's 4 MiB pull, each over the door's 1 MiB.
        (json.dumps({"content_id": "big-1", "padding": padding}).encode(), {}),
        (json.dumps({"content_id": "big-2", "padding": padding}).encode(), {}),
        (json.dumps({**json.loads(good[0][0]), "content_id": "bad-time"}).encode(), {"uploaded_at": "yesterday"}),
        (
            json.dumps(
                {"content_id": "no-account", "media_uri": "x.jpg", "uploaded_at": "2026-12-01T00:00:00Z"}
            ).encode(),
            {},
        ),
        (b'{"content_id": "broken-json", ', {}),
        (
            json.dumps(
                {
                    "content_id": "etc-passwd",
                    "media_uri": "/etc/passwd",
                    "account_id": "a9",
                    "uploaded_at": json.loads(good[0][0])["uploaded_at"],
                }
            ).encode(),
            {},
        ),
    ]
    publisher, _ = pubsub
    for body, attributes in [*poison, *good]:
        publisher.publish(topic, body, **attributes).result(timeout=60)
    warehouse = tmp_path / "stream"
    job = _start(subscription, warehouse, tmp_path / "uploads", "--expected_rows", str(len(poison) + len(good)),
                 "--max_run_s", "600")  # fmt: skip
    out, _ = job.communicate(timeout=600)
    assert job.returncode == 0, out
    refused = dict(query_warehouse(warehouse, "select coalesce(content_id, message_id), reason from dead_letter"))
    assert refused["big-1"] == refused["big-2"] == "message_too_large"
    assert refused["no-account"] == "invalid_event"  # the content id it carried is kept
    assert "bad-time" not in refused or refused["bad-time"] == "invalid_event_time"
    assert refused["etc-passwd"] == "uri_not_allowed"
    assert sorted(refused.values()).count("invalid_event_time") == 1
    assert sorted(refused.values()).count("invalid_event") == 2  # broken JSON (by its message id) and no-account
    decided = {c for (c,) in query_warehouse(warehouse, "select content_id from enforcement_decisions")}
    assert decided == {json.loads(body)["content_id"] for body, _ in good}
    # The clean stop moved the subscription's resume point: nothing is replayed next time.
    _, subscriber = pubsub
    assert subscriber.get_snapshot(snapshot=snapshot_path(subscription)).name
    assert os.environ["PUBSUB_EMULATOR_HOST"]


def test_a_live_replay_never_moves_a_notice_into_the_future():
    row = {"content_id": "c1", "uploaded_at": "2026-01-01T00:00:00Z",
           "notice": {"source": "user_report", "received_at": "2026-01-01T09:00:00Z"}}  # fmt: skip
    body, attributes = publish_events.as_live(json.dumps(row).encode(), {})
    moved = json.loads(body)
    now = dt.datetime.now(dt.UTC)
    received = dt.datetime.fromisoformat(moved["notice"]["received_at"].replace("Z", "+00:00"))
    assert received <= now + dt.timedelta(seconds=1)
    assert attributes["uploaded_at"] == moved["uploaded_at"]


def test_a_row_refused_for_one_field_keeps_the_content_id_it_carried():
    from transforms.parse import RawRow

    assert RawRow("s", text='{"content_id": "c7", "uploaded_at": "yesterday"}').describe()[0] == "c7"
    assert RawRow("s", text="{not json").describe()[0] is None


def test_stop_after_idle_fires_when_nothing_comes_at_all(tmp_path):
    """A restart with nothing left to do stops after the idle time, not at --max_run_s."""
    from apache_beam.runners.runner import PipelineState

    from pipelines.stream_control import StopRequest, wait
    from warehouse.sinks import EmbeddedWarehouse

    running = types.SimpleNamespace(state=PipelineState.RUNNING)  # a job that never writes a row
    started = time.monotonic()
    why = wait(running, EmbeddedWarehouse(str(tmp_path), "r1"), "projects/p1x/subscriptions/s1x", StopRequest(),
               max_run_s=120, stop_after_idle_s=6, expected=(None, None))  # fmt: skip
    assert why.startswith("nothing new in 6 s") and time.monotonic() - started < 30


def test_the_local_runner_asks_once_per_dofn_class_whether_it_keeps_state():
    """The memo `remember_stateful_dofns` puts in Beam's local runners answers as Beam does, asks
    a DoFn class once, and asks every time for a DoFn holding a bound method."""
    import apache_beam as beam
    from apache_beam.coders import VarIntCoder
    from apache_beam.transforms import userstate

    from pipelines.local_runner import ask_once

    class Counting(beam.DoFn):
        SEEN = userstate.ReadModifyWriteStateSpec("seen", VarIntCoder())

        def process(self, element, seen=beam.DoFn.StateParam(SEEN)):
            yield element

    class Plain(beam.DoFn):
        def process(self, element):
            yield element

    class HoldsAMethod(beam.DoFn):
        def __init__(self):
            self.other = Counting().process  # a bound method of its own: not the class's answer

        def process(self, element):
            yield element

    asked = []

    def get_dofn_specs(dofn):
        asked.append(type(dofn).__name__)
        return userstate.get_dofn_specs(dofn)

    ask = ask_once(get_dofn_specs)
    mapped = beam.Map(lambda x: x).dofn  # holds a plain function: its class answers
    method = beam.FlatMap(Counting().process).dofn  # the same class, holding a stateful bound method
    for _ in range(3):
        assert [bool(any(ask(d))) for d in (Counting(), Plain(), mapped, method)] == [True, False, False, True]
        ask(HoldsAMethod())
    assert asked.count("Counting") == asked.count("Plain") == 1
    assert asked.count("HoldsAMethod") == 3 and asked.count(type(mapped).__name__) == 1 + 3
