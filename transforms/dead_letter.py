"""Dead-letter plumbing: every step that can fail routes its failures here, none are dropped.

Each dead letter carries a stable `reason` code next to the exception class and message: the
`reason` attribute of the project's own errors (`MediaRejected` and its kind, `InvalidEvent`,
`SchemaViolation`, ...), or `internal_error` for an exception the pipeline did not expect,
which is a bug to fix rather than an input to reject.
"""

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
    content_id = element.get("content_id") if isinstance(element, dict) else None
    try:
        return content_id, json.dumps(element, default=str, sort_keys=True)
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


INTERNAL_ERROR = "internal_error"


def reason_of(error: BaseException | type) -> str:
    """The stable reason code of an exception (instance or class)."""
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, str) and reason else INTERNAL_ERROR


def make_dead_letter(element: Any, step: str, reason: str, error_type: str, error: str) -> DeadLetter:
    """The dead letter of `element` at `step`, described the one way every dead letter is."""
    content_id, payload = describe_element(element)
    message_id = getattr(element, "message_id", None)
    return DeadLetter(
        step=step,
        disposition=DEAD_LETTER,
        content_id=content_id,
        reason=reason,
        error_type=error_type,
        error=error,
        payload=payload,
        failed_at=utc_now(),
        message_id=message_id if isinstance(message_id, str) else None,
    )


def dead_letter_from_failure(
    failure: tuple[Any, tuple[type, str, list[str]]], step: str, reason: str | None = None
) -> DeadLetter:
    """Turns a `with_exception_handling` failure tuple into a dead-letter record (the reason
    code from the exception class, unless given)."""
    element, (exc_type, exc_repr, formatted_traceback) = failure
    message = failure_message(exc_type, exc_repr, formatted_traceback)
    return make_dead_letter(element, step, reason or reason_of(exc_type), exc_type.__name__, message)


def dead_letter_for(element: Any, error: BaseException, step: str) -> DeadLetter:
    """The dead letter of one element a step raised on (the exception itself at hand, so a
    reason code set on the instance is kept)."""
    return make_dead_letter(element, step, reason_of(error), type(error).__name__, str(error) or repr(error))


DEAD = "dead_letters"


class Guarded(beam.DoFn):
    """Runs a DoFn per element; an element it raises on becomes a dead letter (tagged output)
    and none of its partial outputs are emitted."""

    def __init__(self, dofn: beam.DoFn, step: str):
        self._dofn, self._step = dofn, step

    def setup(self):
        self._dofn.setup()
        self._counter = Metrics.counter("dead_letter", self._step)

    def start_bundle(self):
        self._dofn.start_bundle()

    def process(self, element, *args, **kwargs):
        try:
            outputs = list(self._dofn.process(element, *args, **kwargs) or ())
        except Exception as error:
            self._counter.inc()
            yield beam.pvalue.TaggedOutput(DEAD, dead_letter_for(element, error, self._step))
            return
        yield from outputs

    def finish_bundle(self):
        return self._dofn.finish_bundle()

    def teardown(self):
        self._dofn.teardown()


class ParDoOrDeadLetter(beam.PTransform):
    """Applies a DoFn; elements it raises on come out as `DeadLetter` records for `step`.

    Returns a `(good, dead_letters)` pair of PCollections.
    """

    def __init__(self, dofn: beam.DoFn, step: str, *args: Any, **kwargs: Any):
        super().__init__()
        self._dofn, self._step, self._args, self._kwargs = dofn, step, args, kwargs

    def expand(self, pcoll):
        outputs = pcoll | "Process" >> beam.ParDo(
            Guarded(self._dofn, self._step), *self._args, **self._kwargs
        ).with_outputs(DEAD, main="good")
        return outputs.good, outputs[DEAD]


class MapOrDeadLetter(ParDoOrDeadLetter):
    """`beam.Map(fn)` whose failures come out as `DeadLetter` records for `step`."""

    def __init__(self, fn, step: str, *args: Any, **kwargs: Any):
        super().__init__(_MapDoFn(fn), step, *args, **kwargs)


class FlatMapOrDeadLetter(ParDoOrDeadLetter):
    """`beam.FlatMap(fn)` whose failures come out as `DeadLetter` records for `step`."""

    def __init__(self, fn, step: str, *args: Any, **kwargs: Any):
        super().__init__(_FlatMapDoFn(fn), step, *args, **kwargs)


class _MapDoFn(beam.DoFn):
    def __init__(self, fn):
        self._fn = fn

    def process(self, element, *args, **kwargs):
        yield self._fn(element, *args, **kwargs)


class _FlatMapDoFn(beam.DoFn):
    def __init__(self, fn):
        self._fn = fn

    def process(self, element, *args, **kwargs):
        yield from self._fn(element, *args, **kwargs)


class MediaDoFn(beam.DoFn):
    """Base of the per-item media DoFns: one item per core, so the libraries underneath run
    single-threaded (`transforms.limits.one_thread_per_item`)."""

    def setup(self):
        from transforms.limits import one_thread_per_item

        one_thread_per_item()


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
