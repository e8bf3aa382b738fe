"""Share the bank of confirmed violations with other platforms: export its entries as
exchange rows, import another platform's rows into this warehouse's bank.

    python -m tools.bank export --warehouse DIR --out bank.jsonl [--as_of TIME] [--since TIME]
    python -m tools.bank import --warehouse DIR --input partner.jsonl --exchange partner-name

The exchange format, one JSON object a line (ThreatExchange-style signal rows with labels):

    {"signal_type": "pdq", "signal": "<64 hex digits>", "entry_id": "<opaque id>",
     "labels": ["synthetic_media_undisclosed", "reviewer_removal"], "status": "active",
     "updated_at": "2026-12-06T10:00:00Z"}

`signal_type` is `pdq` (the PDQ hash of one picture or frame; an item has a row per hash);
`status` is `active`, or `withdrawn` for an entry a reversal took out (exported with
`--since`, so a partner can take it out too); `labels` are the policy category and why it
was banked; `entry_id` is the same for every row of one item and names no content or account
of this platform. Import refuses a row with an unknown field or a malformed signal, naming
its line, and writes the rest to `bank_changes` (source: the exchange's name), where both jobs
read them with the platform's own entries: a match is labelled `banked:imported:<entry_id>`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from enforcement.bank import ADD, IMPORT_WITHDRAWN, IMPORTED, OWN_DECISIONS, REMOVE, BankChange, bank_as_of
from pipelines.bank import bank_changes_of, own_media
from pipelines.options import StrictParser, add_flags
from schemas.config import refuse_unknown
from schemas.records import parse_timestamp
from warehouse.reader import WarehouseReader, open_reader

SIGNAL_TYPES = ("pdq",)
FIELDS = ("signal_type", "signal", "entry_id", "labels", "status", "updated_at")
ACTIVE, WITHDRAWN = "active", "withdrawn"


def entry_id(change: BankChange) -> str:
    """An item's id in the exchange: stable, and naming nothing of this platform."""
    return hashlib.sha256(f"{change.source}:{change.content_id}".encode()).hexdigest()[:24]


def export_rows(reader: WarehouseReader, as_of: dt.datetime | None = None,
                since: dt.datetime | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The exchange rows of the bank at `as_of` (default: now); with `since`, also the items
    taken out after it (withdrawn). Imported entries are not passed on: they are another
    platform's to share."""
    changes = [c for c in bank_changes_of(reader) if c.source == OWN_DECISIONS]
    standing = bank_as_of(changes, as_of)
    withdrawn: dict[str, BankChange] = {}
    if since is not None:
        for change in sorted(changes, key=lambda c: c.at):
            if since < change.at and (as_of is None or change.at <= as_of) and change.content_id not in standing:
                withdrawn[change.content_id] = change
        withdrawn = {c: change for c, change in withdrawn.items() if change.change == REMOVE}
    media = own_media(reader, (c.content_id for c in (*standing.values(), *withdrawn.values())))
    rows = []
    for status, items in ((ACTIVE, standing), (WITHDRAWN, withdrawn)):
        for content_id, change in sorted(items.items()):
            labels = [label for label in (change.category, change.reason) if label]
            for digest in media.get(content_id, ([], [], None))[0]:
                rows.append({"signal_type": "pdq", "signal": digest, "entry_id": entry_id(change), "labels": labels,
                             "status": status, "updated_at": change.at.isoformat().replace("+00:00", "Z")})  # fmt: skip
    return rows


def parse_rows(lines: Iterable[str], where: str) -> list[dict[str, Any]]:
    """Validated exchange rows.

    Raises:
        ValueError: `where:<line>:` and what is wrong with the row.
    """
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        at = f"{where}:{number}: "
        try:
            row = json.loads(line)
        except ValueError:
            raise ValueError(f"{at}not a JSON object") from None
        if not isinstance(row, dict):
            raise ValueError(f"{at}not a JSON object")
        refuse_unknown(row, FIELDS, at)
        if row.get("signal_type") not in SIGNAL_TYPES:
            raise ValueError(f"{at}signal_type: expected one of {SIGNAL_TYPES}, got {row.get('signal_type')!r}")
        signal = row.get("signal")
        if not isinstance(signal, str) or len(signal) != 64 or any(c not in "0123456789abcdefABCDEF" for c in signal):
            raise ValueError(f"{at}signal: expected 64 hex digits (a PDQ hash)")
        if not isinstance(row.get("entry_id"), str) or not row["entry_id"].strip():
            raise ValueError(f"{at}entry_id: required")
        labels = row.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise ValueError(f"{at}labels: expected a list of strings")
        if row.get("status", ACTIVE) not in (ACTIVE, WITHDRAWN):
            raise ValueError(f"{at}status: expected {ACTIVE} or {WITHDRAWN}, got {row.get('status')!r}")
        try:
            updated_at = parse_timestamp(row.get("updated_at"), "updated_at")
        except ValueError as exc:
            raise ValueError(f"{at}{exc}") from None
        rows.append({**row, "signal": signal.lower(), "labels": labels, "status": row.get("status", ACTIVE),
                     "updated_at": updated_at})  # fmt: skip
    return rows


def import_changes(rows: list[dict[str, Any]], exchange: str) -> list[BankChange]:
    """One bank change per exchange entry (its rows' hashes together), from `exchange`."""
    by_entry: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        by_entry.setdefault((row["entry_id"], row["status"]), []).append(row)
    changes = []
    for (entry, status), entry_rows in sorted(by_entry.items()):
        first = entry_rows[0]
        hashes = tuple(dict.fromkeys(row["signal"] for row in entry_rows))
        active = status == ACTIVE
        changes.append(BankChange(f"{exchange}:{entry}", ADD if active else REMOVE,
                                  IMPORTED if active else IMPORT_WITHDRAWN, entry,
                                  first["labels"][0] if first["labels"] else None,
                                  max(row["updated_at"] for row in entry_rows), None, exchange,
                                  hashes if active else ()))  # fmt: skip
    return changes


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m tools.bank", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=StrictParser)
    export = commands.add_parser("export", help="Write the bank's entries as exchange rows.")
    add_flags(export, "warehouse", "bigquery_endpoint", required=("warehouse",))
    export.add_argument("--out", required=True, help="Where the exchange rows go (JSON Lines).")
    export.add_argument("--as_of", help="The bank at this moment (RFC 3339; default: now).")
    export.add_argument("--since", help="Also the entries withdrawn after this moment (RFC 3339).")
    load = commands.add_parser("import", help="Add another platform's exchange rows to this warehouse's bank.")
    add_flags(load, "warehouse", "bigquery_endpoint", required=("warehouse",))
    load.add_argument("--input", required=True, help="Exchange rows (JSON Lines).")
    load.add_argument("--exchange", required=True, help="Who the rows come from (kept as each entry's source).")
    args = parser.parse_args(argv)
    if args.command == "export":
        try:
            moments = [
                parse_timestamp(v, n) if v else None for n, v in (("--as_of", args.as_of), ("--since", args.since))
            ]
            reader = open_reader(args.warehouse, args.bigquery_endpoint)
        except (ValueError, FileNotFoundError) as exc:
            parser.error(str(exc))
        rows = export_rows(reader, *moments)
        Path(args.out).write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows), encoding="utf-8")
        entries = {(row["entry_id"], row["status"]) for row in rows}
        print(f"{len(rows)} signals of {len(entries)} entries -> {args.out}", file=sys.stderr)
        return 0
    try:
        rows = parse_rows(Path(args.input).read_text(encoding="utf-8").splitlines(), args.input)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    if args.exchange == OWN_DECISIONS:
        parser.error(f"--exchange: {OWN_DECISIONS!r} names this platform's own decisions")
    from warehouse.sinks import open_tool_sink

    changes = import_changes(rows, args.exchange)
    sink = open_tool_sink(args.warehouse, "bank-import", args.bigquery_endpoint)
    where = sink.write_records("bank_changes", changes)
    print(f"{len(rows)} signals of {len(changes)} entries from {args.exchange} -> bank_changes in {where}",
          file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(run())
