"""Reading and validating upload events from a manifest (JSON Lines, CSV or Parquet).

`parse_event` is the contract for an upload event; every source (manifest, BigQuery table,
Pub/Sub message) funnels through it, so a bad row is rejected the same way everywhere.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.coders import BytesCoder
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from enforcement.dsa_categories import ILLEGAL_CATEGORIES, KEYWORDS_OF
from schemas.records import (
    SKIPPED,
    AccountContext,
    DeadLetter,
    Notice,
    UploadEvent,
    not_in_future,
    parse_timestamp,
    utc_now,
)
from schemas.vocabulary import MEDIA_TYPES, NOTICE_SOURCES
from transforms.dead_letter import ParDoOrDeadLetter, describe_element
from transforms.distinct import KeepFirstInState, KeepOnePerKey

MANIFEST_FORMATS = ("jsonl", "csv", "parquet")
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,255}$")
_COUNTRY_PATTERN = re.compile(r"^[A-Z]{2}$")
_TRUE, _FALSE = {"true", "1", "yes", "y", "t"}, {"false", "0", "no", "n", "f"}


_EXTENSIONS = ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"), (".csv", "csv"), (".parquet", "parquet"))


class InvalidEvent(ValueError):
    """An upload event that does not meet the contract; the message names the field."""

    reason = "invalid_event"


@dataclasses.dataclass(frozen=True)
class RawRow:
    """One input row as read, before validation: the text line or the decoded record."""

    source: str
    text: str | None = None
    record: Mapping[str, Any] | None = None
    # Why the row as read cannot be used (a line that is not UTF-8, a CSV row the reader
    # refuses); `text` then shows what there is to show of it.
    read_error: str | None = None
    message_id: str | None = None  # the Pub/Sub message it came in (streaming)

    def value(self) -> Any:
        """The row's record, or its line parsed as JSON (any JSON value: callers check it).

        Raises:
            ValueError: the line is not UTF-8 or not JSON (nesting too deep counts as not JSON).
        """
        if self.record is not None:
            return self.record
        if self.read_error is not None:
            raise ValueError(self.read_error)
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
        except RecursionError:
            raise ValueError("not valid JSON: nested deeper than the parser allows") from None

    def describe(self) -> tuple[str | None, str]:
        if self.text is not None:  # a row refused for one field still names its content
            try:
                record = json.loads(self.text)
            except (ValueError, RecursionError):
                record = None
            content_id = record.get("content_id") if isinstance(record, dict) else None
            return (content_id if isinstance(content_id, str) and content_id else None), self.text
        content_id = self.record.get("content_id") if isinstance(self.record, Mapping) else None
        return (str(content_id) if content_id is not None else None), json.dumps(
            self.record, default=str, sort_keys=True
        )


def manifest_format(path: str, declared: str | None = None) -> str:
    """The manifest's format: the declared one, else from the file extension."""
    if declared:
        if declared not in MANIFEST_FORMATS:
            raise ValueError(f"--input_format must be one of {MANIFEST_FORMATS}, got {declared!r}")
        return declared
    lowered = path.lower().removesuffix(".gz")
    for suffix, fmt in _EXTENSIONS:
        if lowered.endswith(suffix):
            return fmt
    raise ValueError(f"cannot tell the format of {path!r} from its extension; pass --input_format")


def _required_text(record: Mapping[str, Any], field: str) -> str:
    value = record.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidEvent(f"{field}: required field is missing or empty")
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InvalidEvent(f"{field}: expected a string, got {type(value).__name__}")
    return str(value).strip()


def _optional_bool(record: Mapping[str, Any], field: str) -> bool | None:
    value = record.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InvalidEvent(f"{field}: expected true or false, got {value!r}")


def _optional_text(record: Mapping[str, Any], field: str, max_length: int = 64) -> str | None:
    value = record.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{field}: expected a string, got {type(value).__name__}")
    if len(value) > max_length:
        raise InvalidEvent(f"{field}: longer than {max_length} characters")
    return value.strip()


def _nested_object(record: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    """An object-valued field: a mapping, a JSON string, or (CSV manifests) flattened into
    `<field>_<key>` / `<field>.<key>` columns; empty when absent."""
    value = record.get(field)
    if isinstance(value, str) and value.strip():
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InvalidEvent(f"{field}: not a JSON object") from None
    if value is None or value == "":
        prefixes = (f"{field}_", f"{field}.")
        value = {k[len(field) + 1 :]: v for k, v in record.items()
                 if k.startswith(prefixes) and k != f"{field}_id" and v not in (None, "")}  # fmt: skip
    if not isinstance(value, Mapping):
        raise InvalidEvent(f"{field}: expected an object, got {type(value).__name__}")
    # A BigQuery RECORD column names every key, NULL where the event had none: absent too.
    return {k: v for k, v in value.items() if v not in (None, "")}


def _account(record: Mapping[str, Any]) -> AccountContext | None:
    """The optional `account` object; None when the event has none, and each field None when
    the object leaves it out (absent is normal input, not "false" or "zero")."""
    account = _nested_object(record, "account")
    if not account:
        return None
    created = account.get("created_at")
    strikes = account.get("prior_strikes")
    try:
        strikes = int(strikes) if strikes not in (None, "") else None
    except (TypeError, ValueError):
        raise InvalidEvent(f"account.prior_strikes: expected an integer, got {strikes!r}") from None
    if strikes is not None and strikes < 0:
        raise InvalidEvent("account.prior_strikes: must not be negative")
    try:
        created_at = parse_timestamp(created, "account.created_at") if created not in (None, "") else None
    except ValueError as exc:
        raise InvalidEvent(str(exc)) from None
    context = AccountContext(
        created_at=created_at,
        verified=_optional_bool(account, "verified"),
        high_profile=_optional_bool(account, "high_profile"),
        prior_strikes=strikes,
    )
    return None if context == AccountContext() else context  # an object that states nothing


def _notice(record: Mapping[str, Any]) -> Notice | None:
    """The optional `notice` object: {"source": user_report | trusted_flagger, "received_at",
    "category", "keyword"} (the last two: the illegality the notifier alleges, a DSA category of
    illegal content and one of its keywords). CSV manifests may flatten it into notice_source /
    notice_received_at / notice_category / notice_keyword columns."""
    notice = _nested_object(record, "notice")
    if not notice:
        return None
    source = notice.get("source")
    if source not in NOTICE_SOURCES:
        raise InvalidEvent(f"notice.source: expected one of {NOTICE_SOURCES}, got {source!r}")
    received = notice.get("received_at")
    try:
        received_at = parse_timestamp(received, "notice.received_at") if received not in (None, "") else None
    except ValueError as exc:
        raise InvalidEvent(str(exc)) from None
    if received_at is not None:
        not_in_future(received_at, "notice.received_at")
    category, keyword = notice.get("category"), notice.get("keyword")
    if category is not None and category not in ILLEGAL_CATEGORIES:
        raise InvalidEvent(f"notice.category: expected a DSA category of illegal content (STATEMENT_CATEGORY_..., "
                           f"categories 1-14 of the transparency template), got {str(category)[:80]!r}")  # fmt: skip
    if keyword is not None and (category is None or keyword not in KEYWORDS_OF[category]):
        raise InvalidEvent(f"notice.keyword: {str(keyword)[:80]!r} is not a keyword of notice.category {category!r}")
    return Notice(source=source, received_at=received_at, category=category, keyword=keyword)


def resolve_media_uri(uri: str, base_uri: str | None) -> str:
    """Resolves a manifest's relative media path against the manifest's own directory."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if "://" in uri or uri.startswith("/") or base_uri is None:
        return uri
    return posixpath.normpath(posixpath.join(base_uri, uri)) if "://" not in base_uri else f"{base_uri}/{uri}"


def parse_event(record: Mapping[str, Any], base_uri: str | None = None) -> UploadEvent:
    """Validates one upload event.

    Raises:
        InvalidEvent: the message names the field and what was expected.
    """
    if not isinstance(record, Mapping):
        raise InvalidEvent(f"expected a JSON object, got {type(record).__name__}")
    content_id = _required_text(record, "content_id")
    if not _ID_PATTERN.match(content_id):
        raise InvalidEvent(f"content_id: {content_id[:80]!r} has characters outside [A-Za-z0-9._:@/-]")
    account_id = _required_text(record, "account_id")
    media_uri = _required_text(record, "media_uri")
    uploaded_at = record.get("uploaded_at")  # text, or a TIMESTAMP column's datetime (Parquet, BigQuery)
    try:
        if not isinstance(uploaded_at, dt.datetime):
            uploaded_at = _required_text(record, "uploaded_at")
        uploaded_at = parse_timestamp(uploaded_at, "uploaded_at")
    except ValueError as exc:
        raise InvalidEvent(str(exc)) from None
    not_in_future(uploaded_at, "uploaded_at")
    media_type = _optional_text(record, "media_type")
    if media_type is not None and media_type not in MEDIA_TYPES:
        raise InvalidEvent(f"media_type: expected one of {MEDIA_TYPES}, got {media_type!r}")
    country = _optional_text(record, "country")
    if country is not None and not _COUNTRY_PATTERN.match(country.upper()):
        raise InvalidEvent(f"country: expected an ISO 3166-1 alpha-2 code, got {country!r}")
    return UploadEvent(
        content_id=content_id,
        media_uri=resolve_media_uri(media_uri, base_uri),
        account_id=account_id,
        uploaded_at=uploaded_at,
        media_type=media_type,
        surface=_optional_text(record, "surface"),
        country=country.upper() if country else None,
        declared_ai=_optional_bool(record, "declared_ai"),
        account=_account(record),
        notice=_notice(record),
    )


def parse_raw_row(row: RawRow, base_uri: str | None) -> UploadEvent:
    try:
        record = row.value()
    except ValueError as exc:
        raise InvalidEvent(str(exc)) from None
    return parse_event(record, base_uri)


def read_csv_rows(path: str) -> Iterable[RawRow]:
    """CSV rows as records, read whole-file so quoted newlines inside fields stay intact. A row
    the reader refuses (a field over the csv module's 128 KiB limit) becomes a row with a
    read error, and reading goes on with the next line."""
    with FileSystems.open(path) as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8", errors="replace", newline="")
        reader = csv.DictReader(text)
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                where = f"{path}, line {reader.reader.line_num}"
                yield RawRow(source=path, text=where, read_error=f"unreadable CSV row ({where}): {exc}")
                continue
            extra = record.pop(None, None)
            if extra:
                record["_extra_columns"] = extra
            yield RawRow(source=path, record=record)


class _ParseEventDoFn(beam.DoFn):
    def __init__(self, base_uri: str | None):
        self._base_uri = base_uri

    def process(self, row: RawRow):
        yield parse_raw_row(row, self._base_uri)


class CountRowsRead(beam.DoFn):
    """Counts every input row once, blank or not: the left side of the reconciliation
    (`rows_read` for uploads, `verdict_rows_read` for reviewers' verdicts)."""

    def __init__(self, name: str = "rows_read"):
        self._read = Metrics.counter("reconcile", name)

    def process(self, row: RawRow):
        self._read.inc()
        yield row


def _blank_or_not(row: RawRow, partitions: int) -> int:
    return int(row.text is not None and not row.text.strip())


def _skip_blank(row: RawRow) -> DeadLetter:
    return skipped(row, "parse_events", "blank_line", "blank input line")


def skipped(element: Any, step: str, reason: str, message: str) -> DeadLetter:
    """A deliberate skip, recorded like a dead letter so the reconciliation adds up."""
    content_id, payload = describe_element(element)
    Metrics.counter("reconcile", f"skipped_{reason}").inc()
    return DeadLetter(step, SKIPPED, content_id, reason, reason, message, payload, utc_now())


class ReadManifest(beam.PTransform):
    """Reads a manifest file (or glob) into `RawRow`s; format from the extension or given."""

    def __init__(self, path: str, input_format: str | None = None):
        super().__init__()
        self._path, self._format = path, manifest_format(path, input_format)

    def expand(self, pipeline):
        if self._format == "jsonl":
            return (
                pipeline
                # Bytes, decoded per line: one line that is not UTF-8 is that row's dead letter,
                # not a failure of the whole read.
                | "ReadLines" >> beam.io.ReadFromText(self._path, strip_trailing_newlines=True, coder=BytesCoder())
                | "AsRawRows" >> beam.Map(_line_row, source=self._path)
            )
        if self._format == "parquet":
            return (
                pipeline
                | "ReadParquet" >> beam.io.ReadFromParquet(self._path)
                | "AsRawRows" >> beam.Map(record_row, source=self._path)
            )
        return (
            pipeline
            | "ListFiles" >> beam.Create([self._path])
            | "ExpandGlob" >> beam.FlatMap(_matching_paths)
            | "ReadCsv" >> beam.FlatMap(read_csv_rows)
        )


def _line_row(line: bytes, source: str) -> RawRow:
    """A text line as a row; a byte-order mark (at the start of a file or of any line) is not
    part of the data, and a carriage return left by CRLF line endings is not either."""
    line = line.removeprefix(b"\xef\xbb\xbf").removesuffix(b"\r")
    try:
        return RawRow(source=source, text=line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        error = f"not valid UTF-8: byte 0x{line[exc.start]:02x} at offset {exc.start}"
        return RawRow(source=source, text=line.decode("utf-8", errors="replace"), read_error=error)


def record_row(record: Mapping[str, Any], source: str) -> RawRow:
    """A row read as a record (Parquet, BigQuery) rather than as text."""
    return RawRow(source=source, record=dict(record))


def _matching_paths(pattern: str) -> list[str]:
    return sorted(m.path for result in FileSystems.match([pattern]) for m in result.metadata_list)


def check_manifest(pattern: str, input_format: str | None = None) -> None:
    """Fails fast, before the job starts, on an input no row of which could be read: a pattern
    that matches no file, a Parquet file without a Parquet footer (checked from the footer
    only). Row-level problems are the rows' dead letters, not this.

    Raises:
        ValueError: names the pattern or the file and what is wrong with it.
    """
    paths = _matching_paths(pattern)
    if not paths:
        raise ValueError(f"no files match {pattern}")
    if manifest_format(pattern, input_format) != "parquet":
        return
    for path in paths:
        try:
            with FileSystems.open(path, compression_type="uncompressed") as handle:
                pq.read_schema(pa.PythonFile(handle, mode="r"))
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"{path} is not a readable Parquet file: {exc}") from None


class ParseEvents(beam.PTransform):
    """RawRow -> UploadEvent; invalid rows dead-lettered, blank lines skipped with a reason.

    Returns `(events, dead_letters)`.
    """

    def __init__(self, base_uri: str | None):
        super().__init__()
        self._base_uri = base_uri

    def expand(self, rows):
        rows, blank = (
            rows
            | "CountRowsRead" >> beam.ParDo(CountRowsRead())
            | "SplitBlankLines" >> beam.Partition(_blank_or_not, 2)
        )
        parsed, invalid = rows | "Validate" >> ParDoOrDeadLetter(_ParseEventDoFn(self._base_uri), step="parse_events")
        skipped_blank = blank | "SkipBlankLines" >> beam.Map(_skip_blank)
        return parsed, (invalid, skipped_blank) | "MergeRejected" >> beam.Flatten()


def _content_id(event: UploadEvent) -> str:
    return event.content_id


def _upload_order(event: UploadEvent) -> tuple:
    return event.uploaded_at, event.to_json()


def _duplicate_upload(repeat) -> DeadLetter:
    content_id, event, _ = repeat
    return skipped(event, "dedupe_events", "duplicate_content_id",
                   f"content_id {content_id} appears more than once; the earliest upload is kept")  # fmt: skip


# How long (event time) the streaming job remembers a content id to skip its re-sends.
DEDUPE_HORIZON = dt.timedelta(days=30)


class DeduplicateEvents(beam.PTransform):
    """One event per content_id, so a repeated row or a redelivered message is never scored or
    enforced twice. Batch keeps the earliest upload of each id over the whole input; streaming
    (`streaming=True`) keeps the first to arrive, in keyed state (`transforms.distinct.KeepFirstInState`)."""

    def __init__(self, streaming: bool = False):
        super().__init__()
        self._streaming = streaming

    def expand(self, events):
        if self._streaming:
            horizon_s = DEDUPE_HORIZON.total_seconds()
            kept, repeats = events | "KeepFirstArrival" >> KeepFirstInState(_content_id, horizon_s)
        else:
            kept, repeats = events | "KeepFirstUpload" >> KeepOnePerKey(_content_id, _upload_order)
        return kept, repeats | "SkipDuplicates" >> beam.Map(_duplicate_upload)
