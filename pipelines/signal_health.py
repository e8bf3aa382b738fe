"""Signal health: is what the detectors see, and what the policy does with it, still what it was?

    python -m pipelines.signal_health --warehouse DIR|bq://PROJECT.DATASET --period week
        [--end 2026-11-30] [--reference previous|START/END] [--out DIR] [--costs FILE]

For a period (the day, week or month up to `--end`, by upload time) against a reference (the
period before, or a given range):

* each modality's score, the content and the fused score: the population stability index
  (PSI, ten bins on the reference's deciles) and a two-sample Kolmogorov-Smirnov test, with
  counts, means and abstention rates (a drift is judged on both: `drift`);
* the named hand-made signals that drifted most (PSI per signal of `features`);
* the dead-letter rate by reason;
* the decision volume per rule;
* reviewers' agreement per automated rule (blind verdicts) and the appeal overturn rate per rule;
* alerts past the stated thresholds (`THRESHOLDS`), every check a row of the `signal_health`
  table (written through the same sink as the jobs), and an HTML page with charts;
* when a score drifted past the alert threshold, thresholds re-computed by `models.thresholds`
  on the period's labelled items, as a recommendation: a policy change is a person's.

The streaming job exports the per-score deciles and the dead letters per reason as Beam
metrics (namespace `signal_health`) as items pass, for dashboards between these reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import html
import json
import secrets
import sys
from pathlib import Path
from typing import Any

import numpy as np

from enforcement.automation import wilson_lower_bound
from pipelines.warehouse_reader import WarehouseReader, newest_rows, open_reader
from schemas.records import utc_now
from schemas.version import PIPELINE_VERSION

PERIODS = {"day": dt.timedelta(days=1), "week": dt.timedelta(days=7), "month": dt.timedelta(days=30)}
SCORES = ("visual_score", "audio_score", "metadata_score", "content_score", "fused_score")
SIGNAL_COLUMNS = {"visual": "visual_handcrafted", "audio": "audio_handcrafted", "metadata": "metadata_vector"}
MIN_ITEMS = 30  # fewer items on either side: the check is reported, not judged
# check -> (warn at, alert at); PSI's are the usual 0.1 / 0.25.
THRESHOLDS = {
    "score_psi": (0.1, 0.25),
    "signal_psi": (0.1, 0.25),
    "dead_letter_rate_change": (0.02, 0.05),  # absolute change of a reason's share of items
    "rule_volume_share_change": (0.05, 0.15),  # absolute change of a rule's share of decisions
    "appeal_overturn_rate": (0.1, 0.2),
}
TOP_SIGNALS = 5
# Each upload once, as its newest run measured it: a rerun must not count twice.
LATEST_SCORES = f"({newest_rows('media_scores', 'scored_at')})"
LATEST_FEATURES = f"({newest_rows('features', 'extracted_at')})"


@dataclasses.dataclass(frozen=True)
class HealthCheck:
    """One row of the `signal_health` table."""

    check_name: str
    subject: str
    value: float | None
    reference_value: float | None
    status: str  # ok, warn, alert, insufficient
    detail: str
    period_start: dt.datetime
    period_end: dt.datetime
    reference_start: dt.datetime
    reference_end: dt.datetime
    computed_at: dt.datetime

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"pipeline_version": PIPELINE_VERSION}


def psi(current: np.ndarray, reference: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `current` against `reference` (bins on its quantiles)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 3:  # a constant reference: compare the share at its value
        edges = np.array([-np.inf, edges[0] - 1e-12, edges[0] + 1e-12, np.inf])
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(reference, edges)[0] / len(reference)
    actual = np.histogram(current, edges)[0] / len(current)
    expected, actual = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def status_of(check: str, value: float | None) -> str:
    if value is None:
        return "insufficient"
    warn, alert = THRESHOLDS[check]
    return "alert" if value >= alert else "warn" if value >= warn else "ok"


def drift(current: np.ndarray, reference: np.ndarray) -> tuple[float, float, float, str]:
    """(PSI, KS statistic, KS p-value, status) of a distribution against its reference. On
    small samples the PSI moves by chance (about (bins - 1) x (1/n + 1/m) with no drift at
    all), so a drift must also pass the Kolmogorov-Smirnov test: at 1% for an alert, 5% for a
    warning."""
    from scipy.stats import ks_2samp

    index = psi(current, reference)
    test = ks_2samp(current, reference)
    warn, alert = THRESHOLDS["score_psi"]
    status = (
        "alert" if index >= alert and test.pvalue < 0.01 else "warn" if index >= warn and test.pvalue < 0.05 else "ok"
    )
    return index, float(test.statistic), float(test.pvalue), status


@dataclasses.dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime

    def sql(self, column: str) -> str:
        return f"{column} >= TIMESTAMP '{self.start.isoformat()}' AND {column} < TIMESTAMP '{self.end.isoformat()}'"

    def __str__(self) -> str:
        return f"{self.start.date()} to {self.end.date()}"


class Report:
    """Every check of one period against its reference, read from a warehouse."""

    def __init__(self, reader: WarehouseReader, period: Window, reference: Window):
        self.reader, self.period, self.reference = reader, period, reference
        self.checks: list[HealthCheck] = []
        self.figures: dict[str, Any] = {"period": str(period), "reference": str(reference)}

    def _add(self, check: str, subject: str, value, reference_value, detail: str, status: str | None = None):
        status = status or status_of(check, value)
        self.checks.append(HealthCheck(check, subject, value, reference_value, status, detail, self.period.start,
                                       self.period.end, self.reference.start, self.reference.end, utc_now()))  # fmt: skip

    def scores(self) -> None:
        columns = ", ".join(SCORES)
        abstained = ", ".join(f"{m}_abstained" for m in ("visual", "audio", "metadata"))
        sides = {}
        for name, window in (("period", self.period), ("reference", self.reference)):
            rows = self.reader.rows(
                f"SELECT {columns}, {abstained} FROM {LATEST_SCORES} AS s WHERE {window.sql('uploaded_at')}"
            )
            sides[name] = rows
        self.figures["scores"] = {}
        for score in SCORES:
            current = np.array([r[score] for r in sides["period"] if r[score] is not None], dtype=float)
            before = np.array([r[score] for r in sides["reference"] if r[score] is not None], dtype=float)
            figure = {"items": len(current), "reference_items": len(before),
                      "mean": float(current.mean()) if len(current) else None,
                      "reference_mean": float(before.mean()) if len(before) else None,
                      "histogram": np.histogram(current, 20, (0, 1))[0].tolist(),
                      "reference_histogram": np.histogram(before, 20, (0, 1))[0].tolist()}  # fmt: skip
            modality = score.removesuffix("_score")
            if f"{modality}_abstained" in (sides["period"][0] if sides["period"] else {}):
                flags = [r[f"{modality}_abstained"] for r in sides["period"] if r[f"{modality}_abstained"] is not None]
                figure["abstention_rate"] = float(np.mean(flags)) if flags else None
            if min(len(current), len(before)) >= MIN_ITEMS:
                figure["psi"], figure["ks_statistic"], figure["ks_p_value"], status = drift(current, before)
                detail = (f"PSI {figure['psi']:.3f}; KS {figure['ks_statistic']:.3f} (p={figure['ks_p_value']:.3g}); "
                          f"mean {figure['mean']:.3f} vs {figure['reference_mean']:.3f}; {len(current)} vs "
                          f"{len(before)} items")  # fmt: skip
                self._add("score_psi", score, figure["psi"], None, detail, status)
            else:
                self._add("score_psi", score, None, None, f"{len(current)} vs {len(before)} items (need {MIN_ITEMS})")
            self.figures["scores"][score] = figure

    def signals(self) -> None:
        from models.audio_layout import AUDIO
        from models.metadata_layout import METADATA
        from models.visual_layout import VISUAL

        names = {"visual": VISUAL.signal_names(), "audio": AUDIO.signal_names(), "metadata": METADATA.signal_names()}
        self.figures["signals"] = {}
        for modality, column in SIGNAL_COLUMNS.items():
            sides = []
            for window in (self.period, self.reference):
                rows = self.reader.rows(f"SELECT f.{column} AS v FROM {LATEST_FEATURES} AS f JOIN {LATEST_SCORES} AS s ON "
                                   f"s.content_id = f.content_id WHERE {window.sql('s.uploaded_at')} "
                                   f"AND f.{column} IS NOT NULL")  # fmt: skip
                vectors = [r["v"] for r in rows if r["v"] and len(r["v"]) == len(names[modality])]
                sides.append(np.array(vectors, dtype=float) if vectors else np.zeros((0, len(names[modality]))))
            current, before = sides
            if min(len(current), len(before)) < MIN_ITEMS:
                self.figures["signals"][modality] = []
                continue
            measured = sorted(((*drift(current[:, i], before[:, i]), names[modality][i])
                               for i in range(current.shape[1])), reverse=True)[:TOP_SIGNALS]  # fmt: skip
            self.figures["signals"][modality] = [{"signal": n, "psi": v, "ks_p_value": p} for v, _, p, _, n in measured]
            for value, _, p_value, status, name in measured:
                self._add("signal_psi", f"{modality}:{name}", value, None,
                          f"PSI {value:.3f} of the hand-made signal, KS p={p_value:.3g}", status)  # fmt: skip

    def dead_letters(self) -> None:
        shares = {}
        for name, window in (("period", self.period), ("reference", self.reference)):
            scored = self.reader.rows(
                f"SELECT COUNT(*) AS n FROM {LATEST_SCORES} AS s WHERE {window.sql('uploaded_at')}"
            )[0]["n"]
            rows = self.reader.rows(f"SELECT reason, COUNT(*) AS n FROM dead_letter WHERE {window.sql('failed_at')} "
                               "AND disposition = 'dead_letter' GROUP BY 1")  # fmt: skip
            total = scored + sum(r["n"] for r in rows)
            shares[name] = {r["reason"]: r["n"] / total for r in rows} if total else {}
        self.figures["dead_letter_rate"] = shares
        for reason in sorted(set(shares["period"]) | set(shares["reference"])):
            now, before = shares["period"].get(reason, 0.0), shares["reference"].get(reason, 0.0)
            self._add("dead_letter_rate_change", reason, abs(now - before), before,
                      f"{now:.2%} of items in the period, {before:.2%} in the reference")  # fmt: skip

    def rules(self) -> None:
        volumes = {}
        for name, window in (("period", self.period), ("reference", self.reference)):
            rows = self.reader.rows(f"SELECT rule_id, COUNT(*) AS n FROM enforcement_decisions WHERE supersedes IS NULL "
                               f"AND {window.sql('uploaded_at')} GROUP BY 1")  # fmt: skip
            total = sum(r["n"] for r in rows)
            volumes[name] = {r["rule_id"]: (r["n"], r["n"] / total) for r in rows}
        self.figures["rule_volume"] = {k: {r: n for r, (n, _) in v.items()} for k, v in volumes.items()}
        for rule in sorted(set(volumes["period"]) | set(volumes["reference"])):
            (n, share), (m, before) = volumes["period"].get(rule, (0, 0.0)), volumes["reference"].get(rule, (0, 0.0))
            self._add("rule_volume_share_change", rule, abs(share - before), before,
                      f"{n} decisions ({share:.1%}) against {m} ({before:.1%})")  # fmt: skip
        agreement = self.reader.rows(
            "SELECT rule_id, COUNT(*) AS n, SUM(CASE WHEN agrees THEN 1 ELSE 0 END) AS k FROM reviews "
            f"WHERE blind AND agrees IS NOT NULL AND {self.period.sql('reviewed_at')} GROUP BY 1"
        )
        self.figures["reviewer_agreement"] = {
            r["rule_id"]: {"verdicts": r["n"], "agreement": r["k"] / r["n"], "lower_bound": wilson_lower_bound(r["k"], r["n"])}
            for r in agreement
        }  # fmt: skip
        overturned = self.reader.rows(
            "SELECT d.rule_id AS rule_id, COUNT(*) AS n, SUM(CASE WHEN a.outcome = 'overturned' THEN 1 ELSE 0 END) AS k "
            "FROM appeals AS a JOIN enforcement_decisions AS d ON d.decision_id = a.decision_id "
            f"WHERE {self.period.sql('a.appeal_decided_at')} GROUP BY 1"
        )
        self.figures["appeal_overturn_rate"] = {
            r["rule_id"]: {"appeals": r["n"], "rate": r["k"] / r["n"]} for r in overturned
        }
        for r in overturned:
            value = r["k"] / r["n"] if r["n"] >= 5 else None
            self._add("appeal_overturn_rate", r["rule_id"], value, None, f"{r['k']} of {r['n']} appeals overturned")

    def recommend_thresholds(self, costs: str) -> None:
        drifted = [c.subject for c in self.checks if c.check_name == "score_psi" and c.status == "alert"]
        self.figures["threshold_recommendation"] = None
        if not drifted:
            return
        rows = self.reader.rows(
            f"SELECT s.content_score, s.fused_score, l.label FROM {LATEST_SCORES} AS s JOIN retraining_labels AS l "
            f"ON l.content_id = s.content_id WHERE {self.period.sql('s.uploaded_at')}"
        )
        labels = np.array([r["label"] == "synthetic" for r in rows], dtype=bool)
        if len(rows) < MIN_ITEMS or labels.all() or not labels.any():
            self.figures["threshold_recommendation"] = {
                "drifted": drifted,
                "note": f"{len(rows)} labelled items in the period, of both classes needed: not enough to re-derive",
            }
            return
        from models.thresholds import choose_thresholds, load_costs

        def column(name):
            return np.array([np.nan if r[name] is None else r[name] for r in rows], dtype=float)

        scores = {"content": column("content_score"), "fused": column("fused_score")}
        points = choose_thresholds(labels, scores, load_costs(costs), 0.05, 1_000_000)
        self.figures["threshold_recommendation"] = {
            "drifted": drifted,
            "labelled_items": len(rows),
            "operating_points": [dataclasses.asdict(p) for p in points],
            "note": "a recommendation only: a person changes the policy",
        }


def _histogram_chart(figures: dict[str, Any]) -> str:
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = figures["scores"]
    fig, axes = plt.subplots(1, len(scores), figsize=(3.2 * len(scores), 2.8))
    for ax, (name, figure) in zip(np.atleast_1d(axes), scores.items()):
        edges = np.linspace(0, 1, 21)
        for key, label in (("reference_histogram", "reference"), ("histogram", "period")):
            counts = np.asarray(figure[key], dtype=float)
            ax.step(edges[:-1], counts / max(counts.sum(), 1), where="post", label=label)
        ax.set_title(f"{name} (PSI {figure.get('psi', float('nan')):.2f})", fontsize=9)
        ax.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def render_html(report: Report) -> str:
    rows = "".join(
        f"<tr class='{c.status}'><td>{html.escape(c.status)}</td><td>{html.escape(c.check_name)}</td>"
        f"<td>{html.escape(c.subject)}</td><td>{'' if c.value is None else f'{c.value:.4f}'}</td>"
        f"<td>{html.escape(c.detail)}</td></tr>"
        for c in sorted(report.checks, key=lambda c: ("alert", "warn", "insufficient", "ok").index(c.status))
    )
    recommendation = report.figures.get("threshold_recommendation")
    chart = _histogram_chart(report.figures) if report.figures.get("scores") else ""
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px}.alert{background:#fdd}.warn{background:#ffd}")  # fmt: skip
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>"
        f"<h1>Signal health: {html.escape(str(report.period))} against {html.escape(str(report.reference))}</h1>"
        f"<p>{sum(c.status == 'alert' for c in report.checks)} alerts, "
        f"{sum(c.status == 'warn' for c in report.checks)} warnings.</p>"
        + (f'<img src="{chart}" alt="score distributions">' if chart else "")
        + "<h2>Checks</h2><table><tr><th>status</th><th>check</th><th>subject</th><th>value</th><th>detail</th></tr>"
        + rows
        + "</table><h2>Reviewer agreement and appeal overturn rate, per rule</h2><pre>"
        + html.escape(
            json.dumps({k: report.figures.get(k) for k in ("reviewer_agreement", "appeal_overturn_rate")}, indent=1)
        )
        + "</pre><h2>Threshold recommendation</h2><pre>"
        + html.escape(
            json.dumps(recommendation, indent=1, default=str)
            if recommendation
            else "No score drifted past the alert threshold: nothing to re-derive."
        )
        + "</pre></body></html>"
    )


def period_windows(reader: WarehouseReader, period: str, end: dt.date | None, reference: str) -> tuple[Window, Window]:
    """The period up to `end` (default: the day after the newest upload) and its reference."""
    if end is None:
        newest = reader.query("SELECT MAX(uploaded_at) AS t FROM media_scores").to_pylist()[0]["t"]
        if newest is None:
            raise ValueError("the warehouse holds no scored uploads")
        end = (newest if newest.tzinfo else newest.replace(tzinfo=dt.UTC)).date() + dt.timedelta(days=1)
    stop = dt.datetime.combine(end, dt.time(), dt.UTC)
    current = Window(stop - PERIODS[period], stop)
    if reference == "previous":
        return current, Window(current.start - PERIODS[period], current.start)
    start_text, _, end_text = reference.partition("/")
    try:
        start, finish = dt.date.fromisoformat(start_text), dt.date.fromisoformat(end_text)
    except ValueError:
        raise ValueError(f"--reference: expected previous or START/END dates, got {reference!r}") from None
    return current, Window(
        dt.datetime.combine(start, dt.time(), dt.UTC), dt.datetime.combine(finish, dt.time(), dt.UTC)
    )


def write_checks(warehouse: str, checks: list[HealthCheck], bigquery_endpoint: str | None) -> None:
    """The checks as `signal_health` rows, through the jobs' own sink (Parquet + catalog, or BigQuery)."""
    from pipelines.sinks import open_warehouse

    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-health-") + secrets.token_hex(3)
    sink = open_warehouse(warehouse, run_id, bigquery_endpoint=bigquery_endpoint)
    sink.prepare(truncate=False)
    sink.write_records("signal_health", checks)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.signal_health", description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", required=True, help="Embedded warehouse directory or bq://PROJECT.DATASET.")
    parser.add_argument("--period", choices=sorted(PERIODS), default="week")
    parser.add_argument("--end", type=dt.date.fromisoformat, default=None, help="First day after the period (UTC).")
    parser.add_argument("--reference", default="previous", help="previous (the period before) or START/END dates.")
    parser.add_argument("--costs", default="policies/error_costs.yaml", help="For re-derived thresholds.")
    parser.add_argument("--out", default="signal_health", help="Directory for signal_health.json and .html.")
    parser.add_argument("--bigquery_endpoint", default=None, help="A BigQuery-API server other than Google's.")
    args = parser.parse_args(argv)
    try:
        reader = open_reader(args.warehouse, args.bigquery_endpoint)
        period, reference = period_windows(reader, args.period, args.end, args.reference)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    report = Report(reader, period, reference)
    report.scores()
    report.signals()
    report.dead_letters()
    report.rules()
    report.recommend_thresholds(args.costs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    document = {**report.figures, "checks": [c.to_row() for c in report.checks]}
    (out / "signal_health.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    (out / "signal_health.html").write_text(render_html(report))
    write_checks(args.warehouse, report.checks, args.bigquery_endpoint)
    alerts = [c for c in report.checks if c.status == "alert"]
    print(f"signal health {period} against {reference}: {len(alerts)} alerts, "
          f"{sum(c.status == 'warn' for c in report.checks)} warnings, {len(report.checks)} checks")  # fmt: skip
    for check in alerts:
        print(f"  ALERT {check.check_name} {check.subject}: {check.detail}")
    print(f"report: {out / 'signal_health.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
