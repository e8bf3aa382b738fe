"""A stand-in for the EU Transparency Database's submission API, on loopback.

The real API (transparency.dsa.ec.europa.eu) cannot be reached from the test machine, so this
server answers `POST /api/v1/statements` as the database's own code does
(github.com/digital-services-act/transparency-database, `StatementMultipleAPIController` and
`GroupedSubmissionsService`), over a real socket with real JSON:

* no or another bearer token: 401 `{"message": "Unauthenticated."}`;
* no `Accept: application/json`: a validation failure is a 302 redirect, as Laravel renders it
  for a browser;
* `statements` missing, not a list, or not 1..100 of them: 422 `{"message", "errors":
  {"statements": [...]}}`;
* per statement, the required fields, allowed values and cross-field rules
  (`enforcement.statements.validate_statement`) and the puid format: 422 `{"errors":
  {"statement_<index>": {field: [message]}}}`, no top-level message, nothing stored;
* a puid repeated in the request or already stored: 422 with `errors.puid` and
  `errors.existing_puids`, nothing stored;
* otherwise every statement stored at once: 201 `{"statements": [...]}` in request order, each
  with `uuid`, `puid`, `created_at`, `permalink` and `self`.

Failures are programmed per request (`fail_next`): an HTTP status (503, or 429 with
`Retry-After` and a plain-text body) before anything is looked at, or a batch stored and then
its answer lost (`lost_answer`: a 500 or a dropped connection), the crash a client must survive.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from enforcement.statements import InvalidStatement, validate_statement

PATH = "/api/v1/statements"
PUID_FORMAT = re.compile(r"^[a-zA-Z0-9\-_]+$")
NOT_UNIQUE = "The platform identifier(s) are not all unique within this call."


def field_errors(statement: dict) -> dict[str, list[str]]:
    """The database's messages for one statement (empty when it would be stored)."""
    errors: dict[str, list[str]] = {}
    try:
        validate_statement(statement)
    except InvalidStatement as exc:
        field, _, problem = str(exc).partition(": ")
        if not problem:  # "one of (...) is required": the database names each restriction field
            field, problem = "decision_visibility", str(exc)
        words = field.replace("_", " ")
        if problem == "required":
            message = f"The {words} field is required."
        elif "not an allowed value" in problem:
            message = f"The selected {words} is invalid."
        else:
            message = f"The {words} is invalid ({problem})."
        errors[field] = [message]
    if isinstance(statement.get("puid"), str) and not PUID_FORMAT.match(statement["puid"]):
        errors.setdefault("puid", []).append("The puid format is invalid.")
    return errors


class TransparencyDatabase:
    """The stand-in server: `url` to send to, `stored` (puid -> statement) what it holds,
    `requests` the number of statements in each request that reached it."""

    def __init__(self, token: str):
        self.token = token
        self.stored: dict[str, dict] = {}
        self.requests: list[int] = []
        self._failures: collections.deque[tuple[int | str, str | None]] = collections.deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> TransparencyDatabase:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, count: int, status: int | str, retry_after: str | None = None) -> None:
        """The next `count` requests answer `status` (an HTTP status, or `lost_answer_500` /
        `lost_answer_drop`: stored, then a 500 or the connection closed without an answer)."""
        self._failures.extend([(status, retry_after)] * count)

    def answer(self, headers, body: bytes) -> tuple[int, dict | str | None, dict[str, str]]:
        """(status, body, headers) for one request; None as body: close without answering."""
        with self._lock:
            try:
                envelope = json.loads(body)
            except ValueError:
                envelope = None
            count = len(envelope["statements"]) if isinstance(envelope, dict) and isinstance(
                envelope.get("statements"), list) else 0  # fmt: skip
            self.requests.append(count)
            failure, retry_after = self._failures.popleft() if self._failures else (None, None)
            if failure == 429:  # the throttle answers before anything else, in plain text
                return 429, "Limit Reached. Please do not overload the API", {"Retry-After": retry_after or "1"}
            if isinstance(failure, int):
                return failure, {"message": "Server Error"}, {}
            if headers.get("Authorization") != f"Bearer {self.token}":
                return 401, {"message": "Unauthenticated."}, {}
            status, reply = self._store(envelope)
            if status == 422 and "application/json" not in (headers.get("Accept") or ""):
                return 302, None, {"Location": "/"}
            if status == 201 and failure == "lost_answer_500":
                return 500, {"message": "Server Error"}, {}
            if status == 201 and failure == "lost_answer_drop":
                return 0, None, {}
            return status, reply, {}

    def _store(self, envelope) -> tuple[int, dict]:
        statements = envelope.get("statements") if isinstance(envelope, dict) else None
        if not isinstance(statements, list) or not 1 <= len(statements) <= 100:
            message = (
                "The statements field is required."
                if statements is None
                else "The statements field must have between 1 and 100 items."
            )
            return 422, {"message": message, "errors": {"statements": [message]}}
        invalid = {}
        for index, statement in enumerate(statements):
            errors = field_errors(statement) if isinstance(statement, dict) else {"statement": ["Not an object."]}
            if errors:
                invalid[f"statement_{index}"] = errors
        if invalid:
            return 422, {"errors": invalid}
        puids = [s["puid"] for s in statements]
        repeated = {p for p in puids if puids.count(p) > 1} | {p for p in puids if p in self.stored}
        if repeated:
            return 422, {"message": NOT_UNIQUE, "errors": {"puid": [NOT_UNIQUE], "existing_puids": sorted(repeated)}}
        created_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        out = []
        for statement in statements:
            identifier = str(uuid.uuid4())
            stored = {**statement, "uuid": identifier, "created_at": created_at, "platform_name": "Stand-in",
                      "permalink": f"{self.url}/statement/{identifier}",
                      "self": f"{self.url}/api/v1/statement/{identifier}"}  # fmt: skip
            self.stored[statement["puid"]] = stored
            out.append(stored)
        return 201, {"statements": out}


def _handler(database: TransparencyDatabase) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != PATH:
                self._send(404, {"message": f"The route {self.path.lstrip('/')} could not be found."}, {})
                return
            status, reply, headers = database.answer(self.headers, body)
            if status == 0:  # stored, then gone before the answer
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._send(status, reply, headers)

        def _send(self, status: int, reply, headers: dict[str, str]) -> None:
            if reply is None:
                data, kind = b"", "text/html"
            elif isinstance(reply, str):
                data, kind = reply.encode(), "text/plain; charset=UTF-8"
            else:
                data, kind = json.dumps(reply).encode(), "application/json"
            self.send_response(status)
            for name, value in {**headers, "Content-Type": kind, "Content-Length": str(len(data))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # quiet: the tests read the server's state
            pass

    return Handler
