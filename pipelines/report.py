"""A transparency report a person reads: the compliance queries in `sql/`, as tables and charts.

    python -m pipelines.report --warehouse DIR|bq://PROJECT.DATASET [--bigquery_endpoint URL] --out REPORT_DIR

Runs every `sql/*.sql` through the compliance views (no account identifiers) of the embedded
warehouse or of BigQuery (the same files on both) and writes REPORT_DIR/transparency_report.html with PNG charts beside it.
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

from pipelines.warehouse_reader import WarehouseReader, open_reader

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
TITLES = {
    "actions_by_category": "Restrictive decisions and referrals to human review by category, action and automation (monthly)",
    "actions_by_country": "Restrictive decisions and referrals to human review by country and action (monthly)",
    "median_time_to_action": "Median time from upload, or from the notice, to action (hours, monthly)",
    "appeals_overturn_rate": "Appeals, reversals and the overturn rate of automated decisions",
    "statements_by_category": "Statements of reasons sent to the EU Transparency Database",
    "dead_letter_summary": "Uploads not scored, and why",
}
# The figure each query's chart shows.
CHART_VALUE = {
    "actions_by_category": "decisions",
    "actions_by_country": "decisions",
    "median_time_to_action": "worst_cell_median_hours",
    "appeals_overturn_rate": "overturn_rate",
    "statements_by_category": "statements",
    "dead_letter_summary": "items",
}


def run_queries(reader: WarehouseReader, sql_dir: Path = SQL_DIR) -> dict[str, tuple[list[str], list[tuple]]]:
    """Each query's column names and rows, by file stem, read through the compliance views."""
    results = {}
    for path in sorted(sql_dir.glob("*.sql")):
        table = reader.query(path.read_text(), compliance=True)
        rows = [tuple(row.values()) for row in table.to_pylist()]
        results[path.stem] = (list(table.column_names), rows)
    return results


def _chart(name: str, columns: list[str], rows: list[tuple], out: Path) -> str | None:
    """A bar chart of the query's headline figure against its text columns; None if nothing to plot."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if CHART_VALUE.get(name) not in columns:
        return None
    value_index = columns.index(CHART_VALUE[name])
    labels = [" / ".join(str(v) for v in r if not isinstance(v, (int, float)) or isinstance(v, bool)) for r in rows]
    values = [float(r[value_index] or 0) for r in rows]
    fig, axis = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.4))
    axis.barh(range(len(rows)), values, color="#3b6ea5")
    axis.set_yticks(range(len(rows)), labels, fontsize=7)
    axis.invert_yaxis()
    axis.set_xlabel(columns[value_index])
    axis.set_title(TITLES.get(name, name), fontsize=9, loc="left")
    fig.tight_layout()
    file_name = f"{name}.png"
    fig.savefig(out / file_name, dpi=100)
    plt.close(fig)
    return file_name


def render(results: dict[str, tuple[list[str], list[tuple]]], out: Path, warehouse: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Transparency report</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}th{background:#eee}</style></head><body>",
        "<h1>Transparency report: synthetic media</h1>",
        f"<p>Warehouse: <code>{html.escape(warehouse)}</code>. Decision and appeal figures come from the "
        "<code>transparency_report</code> table, recomputed over every run with each decision and appeal "
        "counted once (<code>python -m pipelines.transparency</code>). Cells under the minimum count are "
        "suppressed and counted apart; no figure identifies a person.</p>",
    ]
    for name, (columns, rows) in results.items():
        parts.append(f"<h2>{html.escape(TITLES.get(name, name))}</h2>")
        chart = _chart(name, columns, rows, out)
        if chart:
            parts.append(f"<img src='{chart}' alt='{html.escape(name)}'>")
        if not rows:
            parts.append("<p><em>No rows in this period.</em></p>")
            continue
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
        for row in rows:
            cells = "".join(f"<td>{html.escape(_format(v))}</td>" for v in row)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    path = out / "transparency_report.html"
    path.write_text("\n".join(parts))
    return path


def _format(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.report", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--warehouse", required=True, help="Embedded warehouse directory, or a BigQuery dataset bq://PROJECT.DATASET."
    )
    parser.add_argument("--bigquery_endpoint", default=None, help="A BigQuery-API server other than Google's.")
    parser.add_argument("--out", required=True, help="Report directory.")
    args = parser.parse_args(argv)
    try:
        reader = open_reader(args.warehouse, args.bigquery_endpoint)
    except (OSError, ValueError) as exc:
        parser.error(f"--warehouse: {exc}")
    path = render(run_queries(reader), Path(args.out), reader.name)
    print(f"transparency report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
