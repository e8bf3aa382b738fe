"""Compares what two warehouses hold for the same uploads: a refactoring check.

    python -m tools.compare_warehouses BEFORE_DIR AFTER_DIR [--table T ...]

Rows are matched on each table's key and compared column by column, leaving out the columns a
run's clock or version sets (when it ran, which pipeline version): features must be
bit-identical, decisions, event ids and statements identical. Exit code 0 when every compared
table agrees, 1 otherwise, with the differences listed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import duckdb

from pipelines.options import StrictParser

# table -> (key columns, columns the run's clock or version sets)
TABLES: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "features": (("content_id",), frozenset({"extracted_at", "pipeline_version"})),
    "media_scores": (("content_id",), frozenset({"scored_at", "pipeline_version"})),
    "enforcement_decisions": (("decision_id",), frozenset({"decided_at", "pipeline_version"})),
    "enforcement_events": (("event_id",), frozenset({"emitted_at", "pipeline_version"})),
    "statements_of_reasons": (("sor_id",), frozenset({"pipeline_version"})),  # runs of the same day
    # The payload names the media path, which depends on where each run's corpus was written.
    "dead_letter": (("step", "content_id", "error_type"), frozenset({"failed_at", "pipeline_version", "payload"})),
}
# TensorFlow on a CPU rounds differently with the composition of a batch (which items share
# it): model outputs agree to about 1e-7 between runs of the same code, so scores are compared
# to this tolerance; everything else, features included, exactly.
SCORE_TOLERANCE = 1e-6


def _rows(directory: Path, table: str, key: tuple[str, ...], volatile: frozenset[str]) -> dict[tuple, dict]:
    files = sorted((directory / table).glob("*.parquet"))
    if not files:
        return {}
    listing = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
    relation = duckdb.sql(f"SELECT * FROM read_parquet({listing}, union_by_name = true)")
    columns = [c for c in relation.columns if c not in volatile]
    rows = {}
    for values in relation.fetchall():
        row = dict(zip(relation.columns, values))
        rows.setdefault(tuple(row.get(k) for k in key), []).append({c: row.get(c) for c in columns})
    return {k: sorted(v, key=repr) for k, v in rows.items()}


def _columns(directory: Path, table: str) -> set[str]:
    files = sorted((directory / table).glob("*.parquet"))
    return set(duckdb.sql(f"SELECT * FROM read_parquet('{files[0]}') LIMIT 0").columns) if files else set()


def _same(column: str, a, b) -> bool:
    """Equal, or for a model output (a score or a domain distance) within `SCORE_TOLERANCE`."""
    if isinstance(a, float) and isinstance(b, float) and ("score" in column or "distance" in column):
        return abs(a - b) <= SCORE_TOLERANCE
    return a == b


def compare(before: Path, after: Path, tables: Iterable[str]) -> list[str]:
    """The differences between two warehouses, one line each (empty: they agree)."""
    problems = []
    for table in tables:
        key, volatile = TABLES[table]
        old, new = _rows(before, table, key, volatile), _rows(after, table, key, volatile)
        if not old and not new:
            continue
        for missing in sorted(set(old) - set(new), key=repr):
            problems.append(f"{table}: {missing} only before")
        for added in sorted(set(new) - set(old), key=repr):
            problems.append(f"{table}: {added} only after")
        for shared in sorted(set(old) & set(new), key=repr):
            pairs = list(zip(old[shared], new[shared]))
            # Columns only one side has are a schema change (listed by `run`), not a difference.
            changed = sorted({c for a, b in pairs for c in set(a) & set(b) if not _same(c, a[c], b[c])})
            if changed or len(old[shared]) != len(new[shared]):
                problems.append(f"{table}: {shared} differs in {changed or 'row count'}")
    return problems


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m tools.compare_warehouses", description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--table", action="append", choices=sorted(TABLES), help="Tables to compare (default: all).")
    parser.add_argument("--exclude_events", default="", help="Leave out events of this action (e.g. suspend_account).")
    args = parser.parse_args(argv)
    tables = args.table or list(TABLES)
    problems = compare(args.before, args.after, tables)
    if args.exclude_events:
        problems = [p for p in problems if not (p.startswith("enforcement_events") and args.exclude_events in p)]
    for line in problems:
        print(line)
    for table in tables:
        old, new = (_columns(d, table) for d in (args.before, args.after))
        if old and new and old != new:
            print(f"{table}: columns added {sorted(new - old)}, removed {sorted(old - new)} (not compared)")
    counts = {t: len(_rows(args.after, t, *TABLES[t])) for t in tables}
    print(("agree" if not problems else f"{len(problems)} difference(s)") + f" over {counts}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(run())
