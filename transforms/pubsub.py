"""Enforcement events to Pub/Sub: one topic per downstream target, the event id on every message.

Each event goes to the topic its target names (`projects/P/topics/<prefix><target>`), as the
event's row in JSON, with `event_id`, `target`, `event_type` and `action` as message
attributes, so a subscriber de-duplicates on `event_id` (a rerun, or a retried publish, sends
the same id again) and filters without parsing. Beam's `WriteToPubSub` is for streaming
pipelines; this publishes batches of events from a DoFn with the Pub/Sub client (published
together, then waited for, not one round trip per event), which retries transient errors
(UNAVAILABLE, DEADLINE_EXCEEDED, ...) only. An event that still
cannot be published (a topic that does not exist, a permission refused) is that event's dead
letter (step `publish_events`), never dropped.

Topics are created by the infrastructure (Terraform), not by the job: a worker's service
account publishes and nothing more. `PUBSUB_EMULATOR_HOST` points the client at the emulator.
"""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas.records import EnforcementEvent
from transforms.dead_letter import DEAD, ParDoOrDeadLetter, dead_letter_for

PUBLISH_TIMEOUT_S = 60.0
MAX_BATCH = 500  # events published together, then waited for
STEP = "publish_events"


class EventNotPublished(RuntimeError):
    """Pub/Sub refused the event (after the client's retries of transient errors)."""

    reason = "not_published"


class TopicNotFound(EventNotPublished):
    reason = "topic_not_found"


def topic_path(project: str, target: str, prefix: str = "") -> str:
    return f"projects/{project}/topics/{prefix}{target}"


def message_for(event: EnforcementEvent) -> tuple[bytes, dict[str, str]]:
    """The message body (the event's row as JSON) and its attributes."""
    row = event.to_row()
    body = json.dumps(row, default=str, sort_keys=True).encode()
    attributes = {"event_id": event.event_id, "target": event.target, "event_type": event.event_type,
                  "action": event.action}  # fmt: skip
    return body, attributes


class _PublishDoFn(beam.DoFn):
    def __init__(self, project: str, prefix: str):
        self._project, self._prefix = project, prefix

    def setup(self):
        from google.cloud import pubsub_v1

        self._client = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=MAX_BATCH, max_latency=0.05)
        )
        self._published = Metrics.counter("publish_events", "published")

    def process(self, events: list[EnforcementEvent]):
        """Publishes a batch of events at once (the client sends them together) and waits for
        all; an event Pub/Sub refuses is that event's dead letter."""
        from google.api_core import exceptions

        pending = []
        for event in events:
            body, attributes = message_for(event)
            topic = topic_path(self._project, event.target, self._prefix)
            pending.append((event, topic, self._client.publish(topic, body, **attributes)))
        for event, topic, future in pending:
            try:
                message_id = future.result(timeout=PUBLISH_TIMEOUT_S)
            except exceptions.NotFound:
                error = TopicNotFound(f"topic {topic} does not exist (the infrastructure creates it)")
            except exceptions.GoogleAPICallError as exc:
                error = EventNotPublished(f"{topic}: {exc}")
            else:
                self._published.inc()
                yield event.event_id, message_id
                continue
            yield beam.pvalue.TaggedOutput(DEAD, dead_letter_for(event, error, STEP))

    def teardown(self):
        client = getattr(self, "_client", None)
        if client is not None:
            client.stop()


class PublishEvents(beam.PTransform):
    """EnforcementEvent -> published to its target's topic. Returns `(published, dead_letters)`;
    `published` holds (event_id, Pub/Sub message id)."""

    def __init__(self, project: str, topic_prefix: str = ""):
        super().__init__()
        self._project, self._prefix = project, topic_prefix

    def expand(self, events):
        return (
            events
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=MAX_BATCH)
            | "Publish" >> ParDoOrDeadLetter(_PublishDoFn(self._project, self._prefix), step=STEP)
        )
