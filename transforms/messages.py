"""Pub/Sub messages into the streaming job: the door every message passes before it is parsed.

    rows, deliveries, dead = p | ReadMessages(subscription, "read_events", "uploaded_at", ...)

A message is input from anyone who may publish to the topic, so the door bounds it before any
step spends work on it, and nothing it refuses is retried forever:

* size: a body over `max_message_bytes` is dead-lettered `message_too_large` (its first
  64 KiB kept as the payload), never parsed;
* time: the event time is read in the job, not by the Pub/Sub reader (whose failure on a bad
  attribute happens before any dead letter can be written, and repeats on every pull): a time
  attribute that is not a time is dead-lettered `invalid_event_time` with the message's id;
  the body's own time is checked when the event is parsed;
* attempts: a message delivered `max_attempts` times without an outcome (a replay after each
  crash it was in flight for) is dead-lettered `delivery_attempts_exceeded` with its payload
  instead of being processed again.

Every message that passes is also a `Delivery` row (`message_deliveries`), what the job's
end-of-run account balances over the subscription's history.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import TimestampedValue

from schemas.records import MAX_PAYLOAD_CHARS, DeadLetter, Delivery, parse_timestamp, utc_now
from transforms.dead_letter import DEAD, make_dead_letter
from transforms.parse import RawRow

DELIVERIES = "deliveries"
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024  # an upload event is a few KiB of JSON
DEFAULT_MAX_ATTEMPTS = 5


class MessageRefused(ValueError):
    reason = "message_refused"


class MessageTooLarge(MessageRefused):
    reason = "message_too_large"


class InvalidEventTime(MessageRefused):
    reason = "invalid_event_time"


class DeliveryAttemptsExceeded(MessageRefused):
    reason = "delivery_attempts_exceeded"


_CONTENT_ID = re.compile(rb'"content_id"\s*:\s*"([A-Za-z0-9._:@/-]{1,256})"')


def _content_id(body: bytes, max_message_bytes: int) -> str | None:
    """The content id a body carries: from its JSON, or, for a body too large to parse or not
    JSON at all, as the first `"content_id": "..."` in its first 64 KiB."""
    if len(body) <= max_message_bytes:
        try:
            record = json.loads(body)
        except (ValueError, RecursionError):
            record = None
        if isinstance(record, dict):
            content_id = record.get("content_id")
            return content_id if isinstance(content_id, str) and content_id else None
    found = _CONTENT_ID.search(body[:MAX_PAYLOAD_CHARS])
    return found.group(1).decode() if found else None


def delivery_of(message, subscription: str, attempts_before: Mapping[str, int], max_message_bytes: int) -> Delivery:
    """The record of this delivery of `message` (a `PubsubMessage`): every message has one,
    refused or not, so the job's account can balance messages delivered against outcomes."""
    body = message.data or b""
    message_id = message.message_id or ""
    content_id = _content_id(body, max_message_bytes)
    return Delivery(message_id, subscription, content_id, message.publish_time or utc_now(), utc_now(), len(body),
                    attempts_before.get(message_id, 0) + 1)  # fmt: skip


def admit_message(message, delivery: Delivery, time_attribute: str, max_message_bytes: int,
                  max_attempts: int) -> RawRow:  # fmt: skip
    """A delivered message as an input row, if the door lets it in.

    Raises:
        MessageRefused: one of its kinds, naming what is wrong and the limit.
    """
    body, attributes = message.data or b"", dict(message.attributes or {})
    if len(body) > max_message_bytes:
        raise MessageTooLarge(f"message body of {len(body)} bytes is over --max_message_bytes {max_message_bytes}")
    if delivery.attempt > max_attempts:
        raise DeliveryAttemptsExceeded(
            f"delivered {delivery.attempt - 1} times without an outcome (the job stopped with it in flight each "
            f"time); --max_delivery_attempts {max_attempts}"
        )
    if time_attribute in attributes:
        try:
            parse_timestamp(attributes[time_attribute], time_attribute)
        except ValueError as exc:
            raise InvalidEventTime(f"attribute {exc}") from None
    try:
        return RawRow(source=delivery.subscription, text=body.decode("utf-8"), message_id=delivery.message_id)
    except UnicodeDecodeError as exc:
        text = body.decode("utf-8", errors="replace")
        return RawRow(source=delivery.subscription, text=text, read_error=f"not valid UTF-8 at offset {exc.start}",
                      message_id=delivery.message_id)  # fmt: skip


def refused(message, delivery: Delivery, error: MessageRefused, step: str) -> DeadLetter:
    """The dead letter of a message the door refused: its id, the content id it carried, and
    as much of its body as a dead letter keeps."""
    text = (message.data or b"")[: MAX_PAYLOAD_CHARS * 4].decode("utf-8", errors="replace")[:MAX_PAYLOAD_CHARS]
    row = RawRow(source=delivery.subscription, text=text, message_id=delivery.message_id or None)
    letter = make_dead_letter(row, step, error.reason, type(error).__name__, str(error))
    return dataclasses.replace(letter, content_id=delivery.content_id)


class _AdmitMessages(beam.DoFn):
    def __init__(self, subscription: str, step: str, time_attribute: str, max_message_bytes: int,
                 attempts_before: Mapping[str, int], max_attempts: int):  # fmt: skip
        self._subscription, self._step, self._time_attribute = subscription, step, time_attribute
        self._max_bytes, self._attempts_before, self._max_attempts = max_message_bytes, attempts_before, max_attempts
        self._refused = Metrics.counter("dead_letter", step)

    def process(self, message):
        delivery = delivery_of(message, self._subscription, self._attempts_before, self._max_bytes)
        yield beam.pvalue.TaggedOutput(DELIVERIES, delivery)
        try:
            yield admit_message(message, delivery, self._time_attribute, self._max_bytes, self._max_attempts)
        except MessageRefused as error:
            self._refused.inc()
            yield beam.pvalue.TaggedOutput(DEAD, refused(message, delivery, error, self._step))


class ReadMessages(beam.PTransform):
    """A subscription's messages through the door: `(rows, deliveries, dead letters)`.

    `attempts_before`: how many times each message still without an outcome was delivered to
    earlier runs (from `message_deliveries`); a message over `max_attempts` is dead-lettered.
    """

    def __init__(self, subscription: str, step: str, time_attribute: str,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 attempts_before: Mapping[str, int] | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS):  # fmt: skip
        super().__init__()
        self._subscription, self._step, self._time_attribute = subscription, step, time_attribute
        self._max_bytes, self._max_attempts = max_message_bytes, max_attempts
        self._attempts_before = dict(attempts_before or {})

    def expand(self, pipeline):
        # No timestamp_attribute: the reader would fail on a bad one before the door sees it.
        messages = pipeline | "ReadPubSub" >> beam.io.ReadFromPubSub(subscription=self._subscription,
                                                                     with_attributes=True)  # fmt: skip
        door = _AdmitMessages(self._subscription, self._step, self._time_attribute, self._max_bytes,
                              self._attempts_before, self._max_attempts)  # fmt: skip
        admitted = messages | "AdmitMessages" >> beam.ParDo(door).with_outputs(DELIVERIES, DEAD, main="rows")
        return admitted.rows, admitted[DELIVERIES], admitted[DEAD]


def at_event_time(element, field: str):
    """The element stamped with its own event time (`uploaded_at`, `decided_at`): what the
    windows and timers downstream run on, read from the parsed event, not the transport."""
    return TimestampedValue(element, getattr(element, field).timestamp())
