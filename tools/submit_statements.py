"""Statements of reasons sent to the EU Transparency Database (DSA Art. 24(5)).

    python -m tools.submit_statements --warehouse DIR|bq://PROJECT.DATASET
        --endpoint https://transparency.dsa.ec.europa.eu --token-file FILE
        [--batch_size 100] [--max_attempts 5] [--timeout 30] [--resend_rejected]

Reads the `statements_of_reasons` the jobs wrote that have no accepted submission to this
endpoint yet and posts them, at most 100 a request, to `POST {endpoint}/api/v1/statements`.
What the database answers decides each statement's outcome, recorded as a row of
`statement_submissions`:

* 201: every statement of the request is stored (`accepted`, with its uuid).
* 422 with `errors.statement_N`: nothing of the request was stored; the named statements are
  `rejected` (and dead-lettered with the database's reasons), the others are sent again.
* 422 with `errors.existing_puids`: the database already holds those puids, from a request
  whose answer was lost (`already_present`); the others are sent again.
* 422 with a `message` (the request's envelope): a bug here; the batch is rejected.
* 401/403: the token is refused; the run stops and records nothing it did not send.
* 429, 5xx, a dropped connection, a timeout: retried with capped exponential backoff
  (`Retry-After` honoured) up to `--max_attempts` requests; then the batch stays unsent and
  the next run sends it again, which is safe: the database takes a puid once, and a statement
  it had stored comes back in `existing_puids`.

A rerun sends nothing twice: an `accepted` or `already_present` row skips its statement, and a
`rejected` one too unless `--resend_rejected` (it is rejected again until the statement
builder is fixed). The exit code is 0 only when nothing is left unsent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import http.client
import json
import logging
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from enforcement.simulation import sql_literal
from enforcement.statements import MAX_BATCH, batches
from pipelines.options import StrictParser, add_flags
from schemas.records import DeadLetter, utc_now
from schemas.version import PIPELINE_VERSION
from transforms.dead_letter import make_dead_letter
from warehouse.reader import WarehouseReader, open_reader

LOG = logging.getLogger(__name__)

API_PATH = "/api/v1/statements"
STEP = "submit_statements"
REJECTED_REASON = "rejected_statement"
ACCEPTED, ALREADY_PRESENT, REJECTED = "accepted", "already_present", "rejected"
SENT = (ACCEPTED, ALREADY_PRESENT)  # a statement with one of these is never sent again
MAX_BACKOFF_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 600.0  # a longer wait than this is the next run's


@dataclasses.dataclass(frozen=True)
class PendingStatement:
    """A statement of reasons waiting to be sent, as the jobs stored it."""

    sor_id: str
    decision_id: str
    statement: Mapping[str, Any]

    @property
    def puid(self) -> str:
        return str(self.statement["puid"])


@dataclasses.dataclass(frozen=True)
class Submission:
    """One statement's outcome at one endpoint: a row of `statement_submissions`."""

    sor_id: str
    decision_id: str
    puid: str
    status: str
    uuid: str | None
    reply: str
    endpoint: str
    attempts: int
    submitted_at: dt.datetime

    @property
    def submission_id(self) -> str:
        key = f"submission:{self.endpoint}:{self.sor_id}:{self.status}"
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def to_row(self) -> dict[str, Any]:
        return {"submission_id": self.submission_id, **dataclasses.asdict(self), "pipeline_version": PIPELINE_VERSION}


@dataclasses.dataclass(frozen=True)
class Reply:
    """What the database answered to one request."""

    status: int
    body: str
    headers: Mapping[str, str]

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Unsent(RuntimeError):
    """A batch still failing after `--max_attempts` requests; the next run sends it again."""


class TransparencyDatabase:
    """The database's submission API over HTTP (standard library only, redirects not followed:
    a redirect means a wrong URL or, without `Accept: application/json`, a validation failure
    rendered for a browser)."""

    def __init__(self, endpoint: str, token: str, timeout: float = 30.0):
        self.endpoint, self._token, self._timeout = endpoint.rstrip("/"), token, timeout
        self._opener = urllib.request.build_opener(_NoRedirects())

    def __repr__(self) -> str:  # never the token
        return f"TransparencyDatabase({self.endpoint!r})"

    def post_statements(self, statements: Sequence[Mapping[str, Any]]) -> Reply:
        """One request; raises OSError or http.client.HTTPException when no answer came back."""
        request = urllib.request.Request(
            self.endpoint + API_PATH,
            data=json.dumps({"statements": list(statements)}).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self._token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return Reply(response.status, response.read().decode("utf-8", "replace"), dict(response.headers))
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, error.read().decode("utf-8", "replace"), dict(error.headers or {}))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises the 3xx as an HTTPError


def transient(status: int) -> bool:
    """Whether a status says "try again later": rate limited or a server error."""
    return status == 429 or status >= 500


def backoff_seconds(attempt: int, retry_after: str | None) -> float:
    """The wait before request `attempt + 1`: the server's `Retry-After` (seconds) when it gave
    one, else 1, 2, 4, ... seconds up to a minute."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), MAX_RETRY_AFTER_SECONDS)
        except ValueError:
            pass  # an HTTP date: fall back to the exponential wait
    return min(2.0 ** (attempt - 1), MAX_BACKOFF_SECONDS)


def post_with_retries(database: TransparencyDatabase, statements: Sequence[Mapping[str, Any]], max_attempts: int,
                      sleep: Callable[[float], None]) -> tuple[Reply, int]:  # fmt: skip
    """The first answer that is not transient, and how many requests it took.

    Raises:
        Unsent: still no answer after `max_attempts` requests (the last failure in the message).
    """
    for attempt in range(1, max_attempts + 1):
        try:
            reply = database.post_statements(statements)
        except (OSError, http.client.HTTPException) as exc:
            failure, retry_after = f"no answer ({type(exc).__name__}: {exc})", None
        else:
            if not transient(reply.status):
                return reply, attempt
            failure, retry_after = f"HTTP {reply.status} {reply.body[:200]!r}", reply.headers.get("Retry-After")
        LOG.warning("statements: request %d of %d failed: %s", attempt, max_attempts, failure)
        if attempt < max_attempts:
            sleep(backoff_seconds(attempt, retry_after))
    raise Unsent(f"{len(statements)} statements unsent after {max_attempts} requests: {failure}")


@dataclasses.dataclass
class BatchOutcome:
    submissions: list[Submission] = dataclasses.field(default_factory=list)
    rejected: list[tuple[PendingStatement, str]] = dataclasses.field(default_factory=list)  # with the reason
    unsent: list[PendingStatement] = dataclasses.field(default_factory=list)
    failure: str | None = None  # why `unsent` is
    stop: bool = False  # no later batch can fare better: a refused token, a wrong endpoint


def _statement_errors(errors: Mapping[str, Any], count: int) -> dict[int, Any] | None:
    """`{index: field errors}` of a per-statement 422, or None when it is not one."""
    named = {}
    for key, value in errors.items():
        index = key.removeprefix("statement_")
        if not key.startswith("statement_") or not index.isdigit() or int(index) >= count:
            return None
        named[int(index)] = value
    return named or None


def submit_batch(database: TransparencyDatabase, batch: Sequence[PendingStatement], max_attempts: int,
                 sleep: Callable[[float], None]) -> BatchOutcome:  # fmt: skip
    """Sends one batch until each statement has an outcome, or the rest stays unsent.

    The database stores a request whole or not at all, so after a 422 the statements it named
    are set aside and the others go again. A refused token (401/403) or an answer no retry
    mends (a redirect, an unknown path) leaves the rest unsent and stops the run.
    """
    outcome, pending = BatchOutcome(), list(batch)
    carried = dict.fromkeys((s.sor_id for s in batch), 0)

    def record(item: PendingStatement, status: str, uuid: str | None, reply: Any) -> None:
        outcome.submissions.append(Submission(item.sor_id, item.decision_id, item.puid, status, uuid,
                                              json.dumps(reply, sort_keys=True), database.endpoint,
                                              carried[item.sor_id], utc_now()))  # fmt: skip

    def stop(failure: str) -> BatchOutcome:
        outcome.unsent, outcome.failure, outcome.stop = pending, failure, True
        return outcome

    while pending:
        try:
            reply, requests = post_with_retries(database, [s.statement for s in pending], max_attempts, sleep)
        except Unsent as exc:
            outcome.unsent, outcome.failure = pending, str(exc)
            return outcome
        for item in pending:
            carried[item.sor_id] += requests
        body = reply.json()
        if reply.status in (401, 403):
            message = body.get("message") if isinstance(body, dict) else reply.body[:200]
            return stop(f"{database.endpoint} refused the token (HTTP {reply.status}: {message})")
        if reply.status == 201 and isinstance(body, dict) and len(body.get("statements") or ()) == len(pending):
            answered = [stored.get("puid") for stored in body["statements"]]
            if answered != [s.puid for s in pending]:
                return stop(f"{database.endpoint} answered 201 with statements not in request order; nothing of "
                            "the batch is recorded (a rerun finds them in existing_puids)")  # fmt: skip
            for item, stored in zip(pending, body["statements"], strict=True):
                record(item, ACCEPTED, stored.get("uuid"), stored)
            return outcome
        errors = body.get("errors") if reply.status == 422 and isinstance(body, dict) else None
        if not isinstance(errors, dict):
            return stop(f"{database.endpoint}{API_PATH} answered HTTP {reply.status}: {reply.body[:300]!r}")
        present = set(errors.get("existing_puids") or ()) & {s.puid for s in pending}
        named = _statement_errors(errors, len(pending))
        if present:
            for item in pending:
                if item.puid in present:
                    record(item, ALREADY_PRESENT, None, {"errors": {"existing_puids": [item.puid]}})
            pending = [s for s in pending if s.puid not in present]
        elif named is not None:
            for index, field_errors in sorted(named.items()):
                record(pending[index], REJECTED, None, {"errors": field_errors})
                outcome.rejected.append((pending[index], json.dumps(field_errors, sort_keys=True)))
            pending = [s for i, s in enumerate(pending) if i not in named]
        else:  # the envelope, or an answer this code does not know: a bug here, no resend mends it
            message = body.get("message") or json.dumps(errors, sort_keys=True)
            for item in pending:
                record(item, REJECTED, None, body)
                outcome.rejected.append((item, message))
            pending = []
    return outcome


def token_from(path: str) -> str:
    """The API token in `path`, whitespace stripped; ValueError when missing or empty."""
    try:
        with open(path) as handle:
            token = handle.read().strip()
    except OSError as exc:
        raise ValueError(f"--token-file {path}: cannot read it ({exc.strerror})") from None
    if not token:
        raise ValueError(f"--token-file {path}: empty")
    return token


def _statuses(statuses: Iterable[str]) -> str:
    return ", ".join(sql_literal(s) for s in statuses)


def read_pending(reader: WarehouseReader, endpoint: str, recorded: bool,
                 resend_rejected: bool) -> tuple[list[PendingStatement], int, dict[str, str]]:  # fmt: skip
    """The statements to send (each sor_id once, oldest first), how many were skipped as sent
    before, and puid -> the sor_id the database holds it for, as recorded (`recorded`: whether
    `statement_submissions` has any row, since an older catalog may not have its view yet)."""
    statement = "SELECT sor_id, decision_id, statement FROM statements_of_reasons"
    order = " ORDER BY application_date, sor_id"
    if not recorded:
        rows = reader.rows(statement + order)
        return [PendingStatement(r["sor_id"], r["decision_id"], json.loads(r["statement"])) for r in rows], 0, {}
    at_endpoint = f"FROM statement_submissions WHERE endpoint = {sql_literal(endpoint)}"
    done = f"SELECT sor_id {at_endpoint} AND status IN ({_statuses(SENT if resend_rejected else (*SENT, REJECTED))})"
    rows = reader.rows(f"{statement} WHERE sor_id NOT IN ({done}){order}")
    skipped = reader.rows(f"SELECT COUNT(*) AS n FROM statements_of_reasons WHERE sor_id IN ({done})")[0]["n"]
    taken = reader.rows(f"SELECT puid, MIN(sor_id) AS sor_id {at_endpoint} AND status IN ({_statuses(SENT)}) "
                        "GROUP BY puid")  # fmt: skip
    pending = [PendingStatement(r["sor_id"], r["decision_id"], json.loads(r["statement"])) for r in rows]
    return pending, int(skipped), {r["puid"]: r["sor_id"] for r in taken}


def puid_clashes(pending: Iterable[PendingStatement], taken: Mapping[str, str]) -> tuple[list, list]:
    """(statements to send, [(statement, reason)]). The database takes a puid once, so a
    statement whose puid another statement holds (sent before, or earlier in this run) is
    rejected here: sent, it would come back in `existing_puids` and pass for stored."""
    holders, to_send, clashes = dict(taken), [], []
    for item in pending:
        holder = holders.setdefault(item.puid, item.sor_id)
        if holder == item.sor_id:
            to_send.append(item)
        else:
            clashes.append((item, f"puid {item.puid!r} is the puid of statement {holder} (the database takes "
                                  "a puid once)"))  # fmt: skip
    return to_send, clashes


@dataclasses.dataclass
class Summary:
    """What a run did, for the command line."""

    read: int = 0
    skipped: int = 0
    accepted: int = 0
    already_present: int = 0
    rejected: int = 0
    unsent: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    stopped: str | None = None  # why the run stopped early

    def __str__(self) -> str:
        return (f"statements read: {self.read}; already sent (skipped): {self.skipped}; accepted now: "
                f"{self.accepted}; already present: {self.already_present}; rejected (dead-lettered): "
                f"{self.rejected}; unsent after retries: {self.unsent}")  # fmt: skip


def dead_letter_of(item: PendingStatement, reason: str) -> DeadLetter:
    return make_dead_letter(dict(item.statement), STEP, REJECTED_REASON, "StatementRejected", reason)


def submit(warehouse: str, database: TransparencyDatabase, *, bigquery_endpoint: str | None = None,
           batch_size: int = MAX_BATCH, max_attempts: int = 5, resend_rejected: bool = False,
           sleep: Callable[[float], None] = time.sleep) -> Summary:  # fmt: skip
    """Sends what the warehouse has not sent to `database` and records the outcomes."""
    from warehouse.sinks import open_tool_sink

    sink = open_tool_sink(warehouse, "submit", bigquery_endpoint)
    reader = open_reader(warehouse, bigquery_endpoint)
    pending, skipped, taken = read_pending(reader, database.endpoint, sink.has_rows("statement_submissions"),
                                           resend_rejected)  # fmt: skip
    summary = Summary(read=len(pending) + skipped, skipped=skipped)
    to_send, clashes = puid_clashes(pending, taken)
    submissions, dead_letters = [], []
    for item, reason in clashes:
        submissions.append(Submission(item.sor_id, item.decision_id, item.puid, REJECTED, None,
                                      json.dumps({"errors": {"puid": [reason]}}), database.endpoint, 0,
                                      utc_now()))  # fmt: skip
        dead_letters.append(dead_letter_of(item, reason))
    by_puid = {item.puid: item for item in to_send}  # unique now
    for batch in batches([dict(item.statement) for item in to_send], batch_size):
        items = [by_puid[s["puid"]] for s in batch]
        if summary.stopped:
            summary.unsent += len(items)
            continue
        outcome = submit_batch(database, items, max_attempts, sleep)
        submissions += outcome.submissions
        dead_letters += [dead_letter_of(item, reason) for item, reason in outcome.rejected]
        summary.unsent += len(outcome.unsent)
        if outcome.stop:
            summary.stopped = outcome.failure
        elif outcome.failure:
            summary.failures.append(outcome.failure)
    for status in (ACCEPTED, ALREADY_PRESENT, REJECTED):
        setattr(summary, status, sum(s.status == status for s in submissions))
    if submissions:
        # The outcomes, and the rejections as dead letters, through the jobs' own sink.
        sink.write_records("statement_submissions", submissions, dead_letters)
    return summary


def run(argv: list[str] | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
    parser = StrictParser(prog="python -m tools.submit_statements",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    add_flags(parser, "warehouse", "bigquery_endpoint", required=("warehouse",))
    parser.add_argument("--endpoint", required=True, help="The Transparency Database, e.g. "
                        "https://transparency.dsa.ec.europa.eu (the API path is added).")  # fmt: skip
    parser.add_argument("--token-file", "--token_file", dest="token_file", required=True,
                        help="A file holding the API token (a Sanctum personal access token).")  # fmt: skip
    parser.add_argument("--batch_size", type=int, default=MAX_BATCH, help=f"Statements a request, 1..{MAX_BATCH}.")
    parser.add_argument("--max_attempts", type=int, default=5, help="Requests per batch on transient failures.")
    parser.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait for an answer.")
    parser.add_argument("--resend_rejected", action="store_true",
                        help="Send statements the database rejected before again (after the builder is fixed).")  # fmt: skip
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= MAX_BATCH:
        parser.error(f"--batch_size must be 1..{MAX_BATCH}")
    if args.max_attempts < 1:
        parser.error("--max_attempts must be at least 1")
    if not args.endpoint.startswith(("https://", "http://")):
        parser.error("--endpoint must be an http(s) URL")
    try:
        token = token_from(args.token_file)
        open_reader(args.warehouse, args.bigquery_endpoint)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    database = TransparencyDatabase(args.endpoint, token, args.timeout)
    summary = submit(args.warehouse, database, bigquery_endpoint=args.bigquery_endpoint,
                     batch_size=args.batch_size, max_attempts=args.max_attempts,
                     resend_rejected=args.resend_rejected, sleep=sleep)  # fmt: skip
    print(summary)
    for failure in summary.failures:
        print(f"  unsent: {failure}")
    if summary.stopped:
        print(f"error: {summary.stopped}; the run stopped, what it had not sent stays unsent", file=sys.stderr)
        return 2
    return 0 if summary.unsent == 0 else 1


if __name__ == "__main__":
    sys.exit(run())
