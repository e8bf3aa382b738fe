"""Enforcement events on Pub/Sub, against the Pub/Sub emulator installed on these machines
(`google-cloud-cli-pubsub-emulator`), started here on loopback and stopped afterwards."""

from __future__ import annotations

import datetime as dt
import json

import apache_beam as beam
import duckdb
import pytest
from apache_beam.testing.util import assert_that, equal_to

from enforcement.events import enforcement_events
from enforcement.policy import decide, load_policy
from transforms.pubsub import PublishEvents
from warehouse.sinks import EmbeddedWarehouse

from .conftest import batch_pipeline
from .test_policy import item

PROJECT = "t-and-s-test"
POLICY = load_policy("policies/synthetic_media_v1.yaml")
TARGETS = sorted({t for names in POLICY.targets.values() for t in names})


@pytest.fixture(scope="module")
def emulator(pubsub_emulator):
    return pubsub_emulator


def _topics_with_subscriptions(prefix: str) -> dict[str, str]:
    """Creates a topic and a subscription per target, as the infrastructure would."""
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    subscriptions = {}
    for target in TARGETS:
        topic = publisher.topic_path(PROJECT, f"{prefix}{target}")
        publisher.create_topic(name=topic)
        subscription = subscriber.subscription_path(PROJECT, f"{prefix}{target}-sub")
        subscriber.create_subscription(name=subscription, topic=topic)
        subscriptions[target] = subscription
    return subscriptions


def _pull_all(subscription: str, expected: int) -> list:
    """Every message the subscription holds: pulls until `expected` came, then once more
    briefly, so a duplicate would show."""
    from google.cloud import pubsub_v1

    subscriber, messages = pubsub_v1.SubscriberClient(), []
    for attempt in range(12):
        waiting = len(messages) < expected
        if not waiting and attempt and len(messages) > expected:
            break
        response = subscriber.pull(subscription=subscription, max_messages=100, timeout=10 if waiting else 2)
        if not response.received_messages and not waiting:
            break
        messages += [m.message for m in response.received_messages]
        if response.received_messages:
            subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages])
    return messages


def test_every_target_topic_receives_its_events_once_with_the_event_id(emulator, tmp_path):
    subscriptions = _topics_with_subscriptions("enf-")
    decisions = [decide(item(0.999), POLICY), decide(item(0.9, content=0.9), POLICY)]
    assert {d.action for d in decisions} == {"remove", "human_review"}
    events = [e for d in decisions for e in enforcement_events(d, emitted_at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC))]
    sink = EmbeddedWarehouse(str(tmp_path), "run", pubsub_project=PROJECT, topic_prefix="enf-")
    with batch_pipeline() as p:
        failures = sink.publish_events([p | beam.Create(events)], p)
        assert_that(failures, equal_to([]))
    expected: dict[str, list[str]] = {}
    for event in events:
        expected.setdefault(event.target, []).append(event.event_id)
    for target, subscription in subscriptions.items():
        messages = _pull_all(subscription, len(expected.get(target, [])))
        assert sorted(m.attributes["event_id"] for m in messages) == sorted(expected.get(target, []))
        for message in messages:
            body = json.loads(message.data)
            assert body["event_id"] == message.attributes["event_id"] and body["target"] == target
    # The warehouse keeps its copy of every event too.
    files = f"{tmp_path}/enforcement_events/run-*.parquet"
    assert duckdb.sql(f"select count(*) from read_parquet('{files}')").fetchall() == [(len(events),)]


def test_an_event_whose_topic_does_not_exist_is_dead_lettered(emulator):
    decision = decide(item(0.999), POLICY)
    (event, *_) = enforcement_events(decision)
    with batch_pipeline() as p:
        _, dead = p | beam.Create([event]) | PublishEvents(PROJECT, topic_prefix="missing-")
        assert_that(dead | beam.Map(lambda d: (d.step, d.reason, d.error_type)),
                    equal_to([("publish_events", "topic_not_found", "TopicNotFound")]))  # fmt: skip


@pytest.mark.slow
def test_the_batch_job_publishes_what_it_writes(emulator, tmp_path):
    from pipelines import batch
    from training import corpus

    subscriptions = _topics_with_subscriptions("job-")
    corpus.generate_corpus(tmp_path / "uploads", count=12, seed=21)
    warehouse = tmp_path / "wh"
    args = ["--input", str(tmp_path / "uploads" / "manifest.jsonl"), "--warehouse", str(warehouse),
            "--events_sink", "pubsub", "--pubsub_project", PROJECT, "--pubsub_topic_prefix", "job-",
            f"--runner={batch.LOCAL_RUNNER}"]  # fmt: skip
    assert batch.run(args) == 0
    with duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True) as con:
        written = con.sql("select target, event_id from enforcement_events").fetchall()
    assert written, "the run emitted no event to publish"
    for target, subscription in subscriptions.items():
        ids = sorted(event_id for t, event_id in written if t == target)
        assert sorted(m.attributes["event_id"] for m in _pull_all(subscription, len(ids))) == ids
