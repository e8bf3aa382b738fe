"""Enforcement events to Pub/Sub: one topic per downstream target, the event id on every message.

Each event goes to the topic its target names (`projects/P/topics/<prefix><target>`), as the
event's row in JSON, with `event_id`, `target`, `event_type` and `action` as message
attributes, so a subscriber de-duplicates on `event_id` (a rerun, or a retried publish, sends
the same id again) and filters without parsing. Beam's `WriteToPubSub` is for streaming
pipelines; this publishes from a DoFn with the Pub/Sub client, which batches messages and
retries transient errors (UNAVAILABLE, DEADLINE_EXCEEDED, ...) only. An event that still
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
from transforms.dead_letter import ParDoOrDeadLetter

PUBLISH_TIMEOUT_S = 60.0


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
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.05)
        )
        self._published = Metrics.counter("publish_events", "published")

    def process(self, event: EnforcementEvent):
        from google.api_core import exceptions

        body, attributes = message_for(event)
        topic = topic_path(self._project, event.target, self._prefix)
        try:
            message_id = self._client.publish(topic, body, **attributes).result(timeout=PUBLISH_TIMEOUT_S)
        except exceptions.NotFound:
            raise TopicNotFound(f"topic {topic} does not exist (the infrastructure creates it)") from None
        except exceptions.GoogleAPICallError as exc:
            raise EventNotPublished(f"{topic}: {exc}") from None
        self._published.inc()
        yield event.event_id, message_id

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
        return events | "Publish" >> ParDoOrDeadLetter(_PublishDoFn(self._project, self._prefix), step="publish_events")
