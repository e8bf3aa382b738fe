"""Dead-letter plumbing: every step that can fail routes its failures here, none are dropped."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas.records import DEAD_LETTER, DeadLetter, utc_now


def describe_element(element: Any) -> tuple[str | None, str]:
    """The content id (when known) and a JSON or text payload for any element in flight."""
    if isinstance(element, tuple) and len(element) == 2 and isinstance(element[0], str):
        content_id, payload = describe_element(element[1])
        return content_id or element[0], payload
    event = getattr(element, "event", None)
    if event is not None and hasattr(event, "to_json"):
        return event.content_id, event.to_json()
    if hasattr(element, "to_json"):
        return getattr(element, "content_id", None), element.to_json()
    if hasattr(element, "describe"):
        return element.describe()
    if isinstance(element, bytes):
        return None, element.decode("utf-8", errors="replace")
    if isinstance(element, str):
        return None, element
    if dataclasses.is_dataclass(element):
        return getattr(element, "content_id", None), repr(element)
    try:
        return None, json.dumps(element, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return None, repr(element)


def failure_message(exc_type: type, exc_repr: str, formatted_traceback: list[str]) -> str:
    """The exception's own message, without the traceback noise."""
    if formatted_traceback:
        last = formatted_traceback[-1].strip()
        prefix, _, message = last.partition(": ")
        if message and prefix.endswith(exc_type.__name__):
            return message
    return exc_repr


def dead_letter_from_failure(failure: tuple[Any, tuple[type, str, list[str]]], step: str) -> DeadLetter:
    """Turns a `with_exception_handling` failure tuple into a dead-letter record."""
    element, (exc_type, exc_repr, formatted_traceback) = failure
    content_id, payload = describe_element(element)
    return DeadLetter(
        step=step,
        disposition=DEAD_LETTER,
        content_id=content_id,
        error_type=exc_type.__name__,
        error=failure_message(exc_type, exc_repr, formatted_traceback),
        payload=payload,
        failed_at=utc_now(),
    )


class _CountDeadLetters(beam.DoFn):
    def __init__(self, step: str):
        self._step = step
        self._counter = Metrics.counter("dead_letter", step)

    def process(self, failure):
        self._counter.inc()
        yield dead_letter_from_failure(failure, self._step)


class ParDoOrDeadLetter(beam.PTransform):
    """Applies a DoFn; elements it raises on come out as `DeadLetter` records for `step`.

    Returns a `(good, dead_letters)` pair of PCollections.
    """

    def __init__(self, dofn: beam.DoFn, step: str, *args: Any, **kwargs: Any):
        super().__init__()
        self._dofn, self._step, self._args, self._kwargs = dofn, step, args, kwargs

    def expand(self, pcoll):
        good, bad = pcoll | "Process" >> beam.ParDo(self._dofn, *self._args, **self._kwargs).with_exception_handling()
        dead = bad | "ToDeadLetter" >> beam.ParDo(_CountDeadLetters(self._step))
        return good, dead


class MediaStep(beam.PTransform):
    """A per-item media step: `DOFN(limits)` with failures dead-lettered under `STEP`.

    Subclasses name the DoFn class and the step; returns `(good, dead_letters)`.
    """

    DOFN: type[beam.DoFn]
    STEP: str

    def __init__(self, limits):
        super().__init__()
        self._limits = limits

    def expand(self, items):
        return items | ParDoOrDeadLetter(self.DOFN(self._limits), step=self.STEP)
