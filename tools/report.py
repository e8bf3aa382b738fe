"""The transparency report a person reads, and the DSA harmonised template the compliance team files.

    python -m tools.report --warehouse DIR|bq://PROJECT.DATASET [--bigquery_endpoint URL] --out REPORT_DIR
        [--period START/END] [--min_cell_count 10] [--dsa_template --provider PROVIDER.yaml]

REPORT_DIR/transparency_report.html is what is published: a summary of the period in the
figures of the quantitative template of Implementing Regulation (EU) 2024/2835, Annex I
(withheld cells shown as withheld), the statements of reasons sent, what was not scored.
REPORT_DIR/monitoring.html is the team's internal detail: every `sql/*.sql` compliance query,
run through the compliance views (no account identifiers) of the embedded warehouse or of
BigQuery (the same files on both), as tables and charts. `--dsa_template` also writes the
template's eleven CSV parts (RFC 4180, UTF-8, as the Commission publishes them) and
blank_cells.csv to REPORT_DIR/dsa_template/; `--provider` names the provider and the service
and answers the qualitative part. The period defaults to the calendar year of the latest record.
"""

from __future__ import annotations

import datetime as dt
import html
import sys
import textwrap
from pathlib import Path

import yaml

from enforcement.dsa_categories import NAMES
from enforcement.dsa_template import (
    FILLED,
    MEASURE_ACTIONS,
    WITHHELD,
    Cell,
    Inputs,
    Period,
    Provider,
    Template,
    file_decisions,
    fill_template,
    means_of,
    policy_rows,
)
from enforcement.policy import PolicyError, load_policy
from pipelines.options import StrictParser, add_flags
from schemas.records import as_utc
from tools.html_pages import html_page
from warehouse.reader import WarehouseReader, open_reader, plain_number

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
CATEGORY_NAMES = {name.code: name.description.strip() for name in NAMES}  # the template's words for its codes
TITLES = {
    "actions_by_category": "Restrictive decisions and referrals to human review by category, action and automation (monthly)",
    "actions_by_country": "Restrictive decisions and referrals to human review by country and action (monthly)",
    "median_time_to_action": "Median time from upload, or from the notice, to action (hours, monthly)",
    "appeals_overturn_rate": "Appeals, reversals and the overturn rate of automated decisions",
    "statements_by_category": "Statements of reasons written, by day and category (sent or not)",
    "dead_letter_summary": "Uploads not scored, and why",
}
# Column headers in words, with units (the queries' own names stay in sql/ for analysts).
HEADERS = {
    "period_start": "month", "category": "category", "action": "action", "detection_method": "detected by",
    "automated_decision": "automated", "decisions": "decisions (count)", "suppressed_cells": "cells withheld (count)",
    "country": "country", "content_type": "content type", "worst_cell_median_hours": "median hours to action (worst cell)",
    "appeals": "appeals (count)", "overturned": "reversed (count)", "overturn_rate": "share reversed (0-1)",
    "application_date": "day", "statements": "statements (count)", "disposition": "disposition", "step": "step",
    "error_type": "error", "items": "uploads (count)",
}  # fmt: skip
COUNT_CHARTS = {"actions_by_category", "actions_by_country", "statements_by_category", "dead_letter_summary"}
# The figure each query's chart shows.
CHART_VALUE = {
    "actions_by_category": "decisions",
    "actions_by_country": "decisions",
    "median_time_to_action": "worst_cell_median_hours",
    "appeals_overturn_rate": "overturn_rate",
    "statements_by_category": "statements",
    "dead_letter_summary": "items",
}
WITHHELD_TEXT = "withheld"
SHEET6, SHEET4, SHEET7, SHEET8 = "6_own_initiative_TC", "4_notices", "7_appeals_and_recidivism", "8_automated_means"


def _rows(reader: WarehouseReader, sql: str) -> list[dict]:
    return [{k: as_utc(v) for k, v in row.items()} for row in reader.query(sql, compliance=True).to_pylist()]


def read_inputs(reader: WarehouseReader, period: Period | None, policy_path: str) -> Inputs:
    """What the template counts, read through the compliance views (one row per id). Without
    `period`, the period runs from the first decision to the last decision, appeal or verdict."""
    decisions = _rows(reader, "SELECT decision_id, content_id, action, category, rule_id, detection_method, automated_decision, "
                              "uploaded_at, decided_at, notified_at, notice_category, notice_keyword, supersedes "
                              "FROM enforcement_decisions")  # fmt: skip
    statements = _rows(reader, "SELECT decision_id, statement FROM statements_of_reasons")
    appeals = _rows(reader, "SELECT appeal_id, decision_id, outcome, action, automated_decision, decided_at, "
                            "appeal_decided_at, submitted_at FROM appeals")  # fmt: skip
    reviews = _rows(reader, "SELECT review_id, decision_id, blind, agrees, machine_action, reviewed_at FROM reviews")
    # The scores behind measures only (what part 8's accuracy per automated means reads), not every upload's.
    restrictive = ", ".join(f"'{action}'" for action in MEASURE_ACTIONS)
    scores = {row["content_id"]: row for row in _rows(
        reader, "SELECT content_id, visual_score, visual_abstained, audio_score, audio_abstained FROM media_scores "
                f"WHERE content_id IN (SELECT content_id FROM enforcement_decisions WHERE action IN ({restrictive}))")}  # fmt: skip
    moments = [row["decided_at"] for row in decisions] + [row["appeal_decided_at"] for row in appeals]
    days = sorted(m.astimezone(dt.UTC).date() for m in moments + [row["reviewed_at"] for row in reviews])
    if period is None:  # Annex II: from 2026 a provider reports per calendar year
        period = Period.calendar_year(days[-1] if days else dt.datetime.now(dt.UTC).date())
    in_period = [day for day in days if period.start <= day <= period.end]
    policy = load_policy(policy_path)
    matching = frozenset(rule.rule_id for rule in policy.rules if ("hash_match", True) in rule.conditions)
    means = {d["decision_id"]: means_of(d, scores.get(d["content_id"]), matching) for d in decisions
             if d["action"] in MEASURE_ACTIONS}  # fmt: skip
    return Inputs(file_decisions(decisions, statements), appeals, reviews, period,
                  in_period[0] if in_period else None, in_period[-1] if in_period else None, means,
                  policy_rows(policy.categories))  # fmt: skip


def run_queries(reader: WarehouseReader, sql_dir: Path = SQL_DIR) -> dict[str, tuple[list[str], list[tuple]]]:
    """Each query's column names and rows, by file stem, read through the compliance views."""
    results = {}
    for path in sorted(sql_dir.glob("*.sql")):
        table = reader.query(path.read_text(), compliance=True)
        rows = [tuple(plain_number(v) for v in row.values()) for row in table.to_pylist()]
        results[path.stem] = (list(table.column_names), rows)
    return results


def _derived_share(part: Cell, whole: Cell, what: str) -> Cell:
    """part / whole, withheld when either is, blank when whole is 0 or not known."""
    if WITHHELD in (part.status, whole.status):
        return Cell(None, WITHHELD, f"{what}: a figure it rests on is withheld")
    if part.status != FILLED or whole.status != FILLED or not whole.value:
        return Cell(None, "not_applicable", f"no {what} in the period")
    return Cell(round(part.value / whole.value, 4), FILLED, f"{part.value} of {whole.value}")


def summary_items(template: Template) -> list[tuple[str, list[tuple[str, Cell, str]]]]:
    """The summary page's figures, grouped: (label, cell, where in the template it is). A figure
    with a source is that template cell; a derived share names the cells it divides."""
    cell = template.cell

    def source(sheet: str, key: tuple[str, ...], column: str = "Value") -> tuple[Cell, str]:
        return cell(sheet, key, column), f"{sheet}|{'|'.join(part.strip() for part in key)}|{column.strip()}"

    own = [("Measures on own initiative (detected by the classifiers)",
            *source(SHEET6, ("TOTAL", ""), "Number of measures taken at the provider's own initiative"))]  # fmt: skip
    for label, column in (("removed", "Visibility restriction Removal"), ("reach reduced", "Visibility restriction Demoted"),
                          ("labelled", "Visibility restriction Labelled"), ("accounts suspended", "Account restriction Suspension")):  # fmt: skip
        own.append((f"  of which {label}", *source(SHEET6, ("TOTAL", ""), column)))
    solely, solely_at = source(SHEET8, ("Use of automated means for content moderation",
                                        "Number of measures solely taken by automated means", "Total number"))  # fmt: skip
    human, human_at = source(SHEET8, ("Use of automated means for content moderation",
                                      "Number of measures not taken by automated means", "Total number"))  # fmt: skip
    total = Cell(solely.value + human.value, FILLED) if FILLED == solely.status == human.status else Cell(
        None, WITHHELD if WITHHELD in (solely.status, human.status) else "not_applicable")  # fmt: skip
    automation = [
        ("All measures, solely automated", solely, solely_at),
        ("All measures, decided or confirmed by a person", human, human_at),
        (
            "Share solely automated",
            _derived_share(solely, total, "measures"),
            f"{solely_at} / ({solely_at} + {human_at})",
        ),
    ]
    categories = []
    for row in template.sheets[SHEET6]:
        measures = row.cells["Number of measures taken at the provider's own initiative "]
        code, description = row.key
        if code.startswith("STATEMENT_CATEGORY_") and (measures.status == WITHHELD or (measures.value or 0) > 0):
            categories.append((CATEGORY_NAMES[code], *source(SHEET6, (code, description),
                                                             "Number of measures taken at the provider's own initiative")))  # fmt: skip
        named = code != "KEYWORD_OTHER" or description  # a blank "Other" row repeats under each category
        if code.startswith("KEYWORD_") and named and (measures.status == WITHHELD or (measures.value or 0) > 0):
            label = f"  {description.capitalize() if code == 'KEYWORD_OTHER' else CATEGORY_NAMES[code]}"
            categories.append(
                (
                    label,
                    measures,
                    f"{SHEET6}|{code}|{description}|Number of measures taken at the provider's own initiative",
                )
            )
    notices = [
        ("Notices received", *source(SHEET4, ("TOTAL", ""), "Number of notices received")),
        ("  from trusted flaggers", *source(SHEET4, ("TOTAL", ""), "Number of notices received from Trusted flaggers")),
        (
            "  acted on (terms and conditions)",
            *source(
                SHEET4, ("TOTAL", ""), "Number of actions taken on the basis of the terms and conditions of the service"
            ),
        ),
        ("  acted on (law)", *source(SHEET4, ("TOTAL", ""), "Number of actions taken on the basis of the law")),
        ("Median hours from notice to action", *source(SHEET4, ("TOTAL", ""), "Median time to take action")),
    ]
    complaints = "Number of complaints submitted to the internal-complaints mechanism"
    appealed, appealed_at = source(SHEET7, ("Internal complaints mechanism", complaints, "Total number"))
    reversed_, reversed_at = source(SHEET7, ("Internal complaints mechanism", complaints, "Decisions reversed"))
    appeals = [
        ("Appeals decided", appealed, appealed_at),
        ("  upheld", *source(SHEET7, ("Internal complaints mechanism", complaints, "Decisions upheld"))),
        ("  reversed", reversed_, reversed_at),
        ("Overturn rate", _derived_share(reversed_, appealed, "appeals"), f"{reversed_at} / {appealed_at}"),
        (
            "Median hours from complaint to outcome",
            *source(SHEET7, ("Internal complaints mechanism", complaints, "Median time")),
        ),
        (
            "Automated decisions upheld on appeal (accuracy)",
            *source(
                SHEET8,
                (
                    "Use of automated means for content moderation",
                    "Accuracy of the automated means - Accuracy",
                    "Total number",
                ),
            ),
        ),
        (
            "Reviewer agreement with sampled automated actions (precision)",
            *source(
                SHEET8,
                (
                    "Use of automated means for content moderation",
                    "Accuracy of the automated means - Precision",
                    "Total number",
                ),
            ),
        ),
        (
            "Accounts suspended (Art. 23)",
            *source(
                SHEET7,
                (
                    "Suspensions imposed on repeated offenders",
                    "Number of suspensions enacted for the provision of manifestly illegal content",
                    "Total number",
                ),
            ),
        ),
    ]
    return [("Measures by type of restriction", own), ("Automation", automation),
            ("Measures by category (DSA Transparency Database codes)", categories or [
                ("No measure in the period", Cell(0, FILLED), "")]), ("Notices", notices), ("Appeals and suspensions", appeals)]  # fmt: skip


def _shown(value: Cell) -> str:
    if value.status == WITHHELD:
        return WITHHELD_TEXT
    if value.value is None:
        return "n/a"
    return value.text()


def _wrapped(title: str, width: int = 80) -> str:
    return textwrap.fill(title, width)


def _bar_chart(
    labels: list[str],
    values: list[float | None],
    title: str,
    x_label: str,
    out: Path,
    name: str,
    counts: bool = True,
) -> str | None:
    """A horizontal bar chart; withheld values (None) get no bar but the word "withheld", so a
    withheld figure never reads as zero. Labels are wrapped, never cut, so no two bars read
    alike; a chart of counts ticks in whole numbers. None when there is nothing to draw."""
    if all(v is None for v in values):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    labels = [textwrap.fill(label, 48) for label in labels]
    lines = sum(label.count("\n") + 1 for label in labels)
    fig, axis = plt.subplots(figsize=(9, 0.22 * lines + 0.2 * len(labels) + 1.6))
    shown = [v if v is not None else 0.0 for v in values]
    axis.barh(range(len(labels)), shown, color="#3b6ea5")
    for index, value in enumerate(values):
        if value is None:
            axis.text(0, index, f" {WITHHELD_TEXT}", va="center", fontsize=7, color="#a33")
    axis.set_yticks(range(len(labels)), labels, fontsize=7)
    axis.invert_yaxis()
    axis.set_xlim(left=0)
    if counts:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel(x_label)
    axis.set_title(_wrapped(title, 90), fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return name


def _withheld_rows(columns: list[str], rows: list[tuple]) -> list[tuple]:
    """Query rows with their figures marked: in a row with withheld cells (`suppressed_cells`),
    a figure of 0 or none is "withheld" (never 0) and any other says the shown part and that
    more is withheld."""
    if "suppressed_cells" not in columns:
        return rows
    flag = columns.index("suppressed_cells")
    marked = []
    for row in rows:
        cells = list(row)
        for index, value in enumerate(row):
            if not row[flag] or index == flag or not (value is None or _is_figure(value)):
                continue
            cells[index] = f"{_format(value)} + withheld" if value else WITHHELD_TEXT
        marked.append(tuple(cells))
    return marked


def _is_figure(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _query_chart(name: str, columns: list[str], rows: list[tuple], out: Path) -> str | None:
    if CHART_VALUE.get(name) not in columns or not rows:
        return None
    value_index = columns.index(CHART_VALUE[name])
    labels = [" / ".join(_format(v) for i, v in enumerate(r) if i != value_index and isinstance(v, (str, dt.date, bool))
                         and columns[i] != "suppressed_cells") for r in rows]  # fmt: skip
    labels = [f"{label} (row {n})" if labels.count(label) > 1 else label for n, label in enumerate(labels, 1)]
    values = [r[value_index] if _is_figure(r[value_index]) else None for r in rows]
    header = HEADERS.get(columns[value_index], columns[value_index])
    return _bar_chart(labels, values, TITLES.get(name, name), header, out, f"{name}.png", name in COUNT_CHARTS)


def _summary_html(template: Template, out: Path, dead_letters: list[tuple]) -> list[str]:
    parts = [f"<section id='summary'><h2>Summary: {html.escape(template.provider.service)}, "
             f"{html.escape(str(template.period))}</h2>",
             *([f"<p class='coverage'><strong>{html.escape(template.coverage)}</strong></p>"] if template.coverage else []),
             f"<p>Figures of the DSA harmonised template (Implementing Regulation (EU) 2024/2835, Annex I) for the "
             f"period; each names its sheet, row and column. Figures under {template.min_cell_count} are "
             f"<strong>withheld</strong> so none identifies a person; <em>n/a</em> means nothing to measure.</p>"]  # fmt: skip
    groups = summary_items(template)
    own = groups[0][1]
    labels = [label.strip() for label, _, _ in own[1:]]
    values = [cell.value if cell.status == FILLED else None for _, cell, _ in own[1:]]
    chart = _bar_chart(labels, values, "Measures on own initiative by type of restriction", "measures", out,
                       "summary_measures.png")  # fmt: skip
    parts.append(f"<img src='{chart}' alt='measures by restriction'>" if chart else
                 "<p class='nodata'><em>No data to chart: no measure in this period.</em></p>")  # fmt: skip
    parts.append("<table class='summary'>")
    for title, items in groups:
        parts.append(f"<tr><th colspan='3'>{html.escape(title)}</th></tr>")
        for label, cell, where in items:
            parts.append(f"<tr><td>{html.escape(label)}</td><td class='figure' data-cell='{html.escape(where)}'>"
                         f"{html.escape(_shown(cell))}</td><td class='source'>{html.escape(where)}</td></tr>")  # fmt: skip
    parts.append("<tr><th colspan='3'>Not scored, and why (dead-letter and skipped rows in the period)</th></tr>")
    if not dead_letters:
        parts.append("<tr><td>Every upload was scored</td><td class='figure'>0</td><td></td></tr>")
    for disposition, reason, count in dead_letters:
        parts.append(f"<tr><td>{html.escape(f'{disposition}: {reason}')}</td><td class='figure'>{count}</td>"
                     "<td class='source'>dead_letter</td></tr>")  # fmt: skip
    parts.append("</table></section>")
    return parts


def _counts_in_period(reader: WarehouseReader, table: str, keys: str, moment: str, period: Period) -> list[tuple]:
    """(*keys, count) of `table`'s rows whose `moment` falls in the period, through the
    compliance views, biggest first."""
    table = reader.query(
        f"SELECT {keys}, COUNT(*) AS n FROM {table} "
        f"WHERE CAST({moment} AS DATE) BETWEEN DATE '{period.start.isoformat()}' AND DATE '{period.end.isoformat()}' "
        f"GROUP BY {keys} ORDER BY n DESC, {keys}",
        compliance=True,
    )
    return [tuple(row.values()) for row in table.to_pylist()]


def read_dead_letters(reader: WarehouseReader, period: Period) -> list[tuple]:
    """(disposition, reason, uploads) not scored in the period."""
    return _counts_in_period(reader, "dead_letter", "disposition, reason", "failed_at", period)


# The report's own touches on the common page layout (tools.html_pages).
_STYLE = ("th{background:#eee}td,th{font-size:12px}td.figure{text-align:right;white-space:nowrap}"
          "td.source{color:#777;font-size:10px}.internal{background:#fff4e0;border:1px solid #e0a030;padding:.5em 1em}")  # fmt: skip


def read_submissions(reader: WarehouseReader, period: Period) -> list[tuple]:
    """(status, statements) sent to the EU Transparency Database in the period."""
    return _counts_in_period(reader, "statement_submissions", "status", "submitted_at", period)


def _submissions_html(submissions: list[tuple]) -> list[str]:
    parts = ["<section id='statements'><h2>Statements of reasons sent to the EU Transparency Database</h2>"]
    if not submissions:
        parts.append("<p><strong>None sent in this period.</strong> Statements of reasons are written for every "
                     "measure; <code>python -m tools.submit_statements</code> sends them.</p>")  # fmt: skip
    else:
        parts.append("<p>Each statement sent is public in the database itself. By the database's answer:</p><table>"
                     "<tr><th>answer</th><th>statements (count)</th></tr>")  # fmt: skip
        parts += [
            f"<tr><td>{html.escape(str(status))}</td><td class='figure'>{n}</td></tr>" for status, n in submissions
        ]
        parts.append("</table>")
    parts.append("</section>")
    return parts


def render(results: dict[str, tuple[list[str], list[tuple]]], out: Path, warehouse: str,
           template: Template | None = None, dead_letters: list[tuple] = (), submissions: list[tuple] = ()) -> Path:  # fmt: skip
    """OUT/transparency_report.html, what is published: the template's figures in words, the
    statements sent, what was not scored, links to the CSV parts. OUT/monitoring.html, for the
    team only: the monthly detail tables, whose cells are withheld one by one and not weighed
    against the filing's figures (so it is not to be published beside them)."""
    out.mkdir(parents=True, exist_ok=True)
    body = ["<h1>Transparency report: synthetic media</h1>"]
    if template is not None:
        body += _summary_html(template, out, list(dead_letters))
    body += _submissions_html(list(submissions))
    body.append("<section id='files'><h2>The filing's files</h2><p>The Commission's template, eleven CSV parts, in "
                "<code>dsa_template/</code> (with <code>--dsa_template</code>); every blank figure there, and why it "
                "is blank (withheld, not applicable, not recorded, not yet written), in "
                "<code>dsa_template/blank_cells.csv</code>. Monthly detail for the team: "
                "<a href='monitoring.html'>monitoring.html</a> (internal, not for publication).</p></section>")  # fmt: skip
    path = out / "transparency_report.html"
    path.write_text(html_page("Transparency report: synthetic media", body, _STYLE))
    monitoring = _monitoring_html(results, out, warehouse)
    (out / "monitoring.html").write_text(html_page("Enforcement monitoring (internal)", monitoring, _STYLE))
    return path


def _monitoring_html(results: dict[str, tuple[list[str], list[tuple]]], out: Path, warehouse: str) -> list[str]:
    parts = [
        "<h1>Enforcement monitoring (internal)</h1>",
        "<p class='internal'><strong>Internal: not for publication.</strong> These monthly tables withhold each cell "
        "under the minimum count on its own; they are not weighed against the transparency report's figures, so "
        "beside them a withheld figure could be worked out. The published figures are in "
        "<a href='transparency_report.html'>transparency_report.html</a> and <code>dsa_template/</code>.</p>",
        f"<p>Warehouse: <code>{html.escape(warehouse)}</code>. Decision and appeal figures come from the "
        "<code>transparency_report</code> table, recomputed over every run with each decision and appeal counted "
        "once (<code>python -m pipelines.transparency</code>).</p>",
    ]
    for name, (columns, rows) in results.items():
        parts.append(f"<h2>{html.escape(TITLES.get(name, name))}</h2>")
        rows = _withheld_rows(columns, rows)
        if not rows:
            parts.append("<p class='nodata'><em>No data in this period.</em></p>")
            continue
        chart = _query_chart(name, columns, rows, out)
        parts.append(f"<img src='{chart}' alt='{html.escape(TITLES.get(name, name))}'>" if chart else
                     "<p class='nodata'><em>No data to chart: every figure is withheld or empty.</em></p>")  # fmt: skip
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(HEADERS.get(c, c))}</th>" for c in columns) + "</tr>")
        for row in rows:
            cells = "".join(f"<td>{html.escape(_format(v))}</td>" for v in row)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    return parts


def _format(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def read_provider(path: str, today: dt.date) -> Provider:
    """The provider file (YAML or JSON): provider_name, service_name, optional publication_date
    and previous_report_date. Raises ValueError or OSError with a message for the command line."""
    try:
        record = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"not YAML or JSON: {exc}") from None
    return Provider.from_record(record, today)


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m tools.report", description=__doc__.split("\n\n")[0])
    add_flags(parser, "warehouse", "bigquery_endpoint", "min_cell_count", required=("warehouse",))
    parser.add_argument("--out", required=True, help="Report directory.")
    parser.add_argument("--period", default=None,
                        help="START/END (YYYY-MM-DD/YYYY-MM-DD, both days included); default: the calendar year of the "
                             "latest decision, appeal or verdict (Annex II's reporting period), said to be partial "
                             "when the records or the year do not cover it.")  # fmt: skip
    parser.add_argument("--dsa_template", "--dsa-template", action="store_true",
                        help="Also write the quantitative DSA template's CSV parts to OUT/dsa_template/.")  # fmt: skip
    parser.add_argument("--provider", default=None, help="Provider file (YAML): provider_name, service_name, "
                        "optional publication_date, previous_report_date. Required with --dsa_template.")  # fmt: skip
    add_flags(parser, "policy")  # the live policy
    args = parser.parse_args(argv)
    if args.min_cell_count < 1:
        parser.error("--min_cell_count must be at least 1")
    if args.dsa_template and not args.provider:
        parser.error("--dsa_template needs --provider (the provider and service the report names)")
    today = dt.datetime.now(dt.UTC).date()
    try:
        period = Period.parse(args.period) if args.period else None
    except ValueError as exc:
        parser.error(f"--period: {exc}")
    provider = Provider("(provider not named)", "(service not named)", today)
    if args.provider:
        try:
            provider = read_provider(args.provider, today)
        except (OSError, ValueError) as exc:
            parser.error(f"--provider: {exc}")
    try:
        reader = open_reader(args.warehouse, args.bigquery_endpoint)
    except (OSError, ValueError) as exc:
        parser.error(f"--warehouse: {exc}")
    try:
        inputs = read_inputs(reader, period, args.policy)
    except (OSError, PolicyError) as exc:
        parser.error(f"--policy: {exc}")
    template = fill_template(inputs, provider, args.min_cell_count, today)
    out = Path(args.out)
    path = render(run_queries(reader), out, reader.name, template, read_dead_letters(reader, inputs.period),
                  read_submissions(reader, inputs.period))  # fmt: skip
    print(f"transparency report: {path}  (period {inputs.period})")
    if template.coverage:
        print(template.coverage)
    if args.dsa_template:
        written = template.write(out / "dsa_template")
        withheld = sum(
            c.status == WITHHELD for rows in template.sheets.values() for r in rows for c in r.cells.values()
        )
        empty = [
            row.key[0].strip() for row in template.sheets["11_qualitative"] if row.cells["Value"].status == "empty"
        ]
        if empty:
            print(f"part 11, still to be written in the provider file: {'; '.join(empty)}")
        print(f"DSA harmonised template: {len(written) - 1} CSV parts and {written[-1].name} in {out / 'dsa_template'} "
              f"({withheld} figures withheld so that none under {args.min_cell_count} can be worked out)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(run())
