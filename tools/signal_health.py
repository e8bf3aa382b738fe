"""Signal health: is what the detectors see, and what the policy does with it, still what it was?

    python -m tools.signal_health --warehouse DIR|bq://PROJECT.DATASET --period_type week
        [--end 2026-11-30] [--reference previous|START/END] [--out DIR] [--costs FILE]

For a period (the day, week or month up to `--end`, by upload time) against a reference (the
period before, or a given range):

* each modality's score, the content and the fused score: the population stability index
  (PSI, ten bins on the reference's deciles) and a two-sample Kolmogorov-Smirnov test, with
  counts, means and abstention rates (a drift is judged on both: `drift`);
* the named hand-made signals that drifted most (PSI per signal of `features`);
* the dead-letter rate by reason;
* the decision volume per rule;
* media matching: the share of uploads matching the bank of confirmed violations, linked to a
  suspended account's media, or in a campaign, and the bank's growth (entries added and taken
  out, and the share of changes that were reversals);
* reviewers' agreement per automated rule (blind verdicts) and the appeal overturn rate per rule;
* alerts past the stated thresholds (`THRESHOLDS`), every check a row of the `signal_health`
  table (written through the same sink as the jobs), and an HTML page with charts;
* when a score drifted past the alert threshold, thresholds re-computed by `training.thresholds`
  on the period's labelled items, as a recommendation: a policy change is a person's.

The streaming job exports the per-score deciles and the dead letters per reason as Beam
metrics (namespace `signal_health`) as items pass, for dashboards between these reports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from enforcement.automation import wilson_lower_bound
from pipelines.options import StrictParser, add_flags
from schemas.records import as_utc, utc_now
from schemas.version import PIPELINE_VERSION
from tools.html_pages import figure, html_page, html_table, percent, png_uri
from warehouse.reader import WarehouseReader, newest_rows, open_reader

PERIODS = {"day": dt.timedelta(days=1), "week": dt.timedelta(days=7), "month": dt.timedelta(days=30)}
SCORES = ("visual_score", "audio_score", "metadata_score", "content_score", "fused_score")
SIGNAL_COLUMNS = {"visual": "visual_handcrafted", "audio": "audio_handcrafted", "metadata": "metadata_vector"}
MIN_ITEMS = 30  # fewer items on either side: the check is reported, not judged
MIN_APPEALS = 5  # fewer decided appeals of a rule: its overturn rate is reported, not judged
PSI_BINS = 10
# check -> (warn at, alert at); PSI's are the usual 0.1 / 0.25.
THRESHOLDS = {
    "score_psi": (0.1, 0.25),
    "signal_psi": (0.1, 0.25),
    "dead_letter_rate_change": (0.02, 0.05),  # absolute change of a reason's share of items
    "rule_volume_share_change": (0.05, 0.15),  # absolute change of a rule's share of decisions
    "appeal_overturn_rate": (0.1, 0.2),
    "match_rate_change": (0.02, 0.05),  # absolute change of the share of uploads matched
    "bank_reversal_share": (0.05, 0.15),  # share of the period's bank changes that took an entry out
}
# A PSI past a threshold counts only if a two-sample KS test confirms the change: (warn, alert) below these p-values.
KS_P_VALUES = (0.05, 0.01)
# check -> (the page's heading for it, what its value is).
CHECKS = {
    "score_psi": ("Score distributions", "PSI"),
    "signal_psi": ("Hand-made signals that moved most", "PSI"),
    "dead_letter_rate_change": ("Dead letters per reason", "change of its share of items"),
    "rule_volume_share_change": ("Decisions per rule", "change of its share of decisions"),
    "appeal_overturn_rate": ("Appeals overturned per rule", "share of appeals overturned"),
    "match_rate_change": ("Media matched: the bank, suspended accounts, campaigns", "change of its share of uploads"),
    "bank_reversal_share": ("The bank's growth", "share of the period's changes that took an entry out"),
}
# match_rate_change subjects -> (what matched, SQL counting the window's uploads that did; {window} is its filter).
MATCHES = {
    "bank_match": (
        "matched the bank of confirmed violations",
        "SELECT COUNT(*) AS n FROM {scores} AS s WHERE s.hash_match IS NOT NULL AND {window}",
    ),
    "evasion_link": (
        "matched the media of a suspended account",
        "SELECT COUNT(*) AS n FROM {scores} AS s WHERE s.evasion_match IS NOT NULL AND {window}",
    ),
    "campaign_member": (
        "were members of a campaign",
        "SELECT COALESCE(SUM(n), 0) AS n FROM (SELECT MAX(member_count) AS n FROM campaigns "
        "WHERE {first_seen} GROUP BY campaign_id) AS c",
    ),
}
STATUS_ORDER = ("alert", "warn", "insufficient", "ok")
TOP_SIGNALS = 5
# Re-derived thresholds are priced at this share of synthetic uploads and this traffic.
ASSUMED_PREVALENCE = 0.05
ASSUMED_DAILY_UPLOADS = 1_000_000
# The checks' tables keep their columns' widths, so a long detail wraps instead of squeezing the status.
PAGE_STYLE = (
    ".alert{background:#fdd}.warn{background:#ffd}.rule{color:#444}table.checks{table-layout:fixed;width:100%}"
    ".checks th:nth-child(1){width:7em}.checks th:nth-child(2){width:14em}.checks th:nth-child(3){width:9em}"
)
# The page's tables: what each column holds, under its heading.
AGREEMENT_COLUMNS = {
    "rule": "rule",
    "verdicts": "blind verdicts",
    "agreement": "agreement",
    "lower_bound": "agreement, 95% lower bound",
    "appeals": "appeals decided",
    "rate": "overturned",
}
OPERATING_POINT_COLUMNS = {
    "tier": "tier",
    "score": "score",
    "threshold": "threshold",
    "expected_cost_per_item": "expected cost per item",
    "precision": "precision",
    "recall": "recall",
    "false_positive_rate": "false-positive rate",
    "daily_volume": "flagged a day",
}
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


def psi(current: np.ndarray, reference: np.ndarray, bins: int = PSI_BINS) -> float:
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


def drift(current: np.ndarray, reference: np.ndarray, check: str = "score_psi") -> tuple[float, float, float, str]:
    """(PSI, KS statistic, KS p-value, status) of a distribution against its reference (see
    `drift_status`)."""
    from scipy.stats import ks_2samp

    index = psi(current, reference)
    test = ks_2samp(current, reference)
    return index, float(test.statistic), float(test.pvalue), drift_status(check, index, float(test.pvalue))[0]


def drift_status(check: str, index: float, p_value: float) -> tuple[str, str]:
    """The status of a PSI and why, in words. On small samples the PSI moves by chance, past the
    alert level with no drift at all (a bin one side leaves empty adds about 0.7 on its own), so a
    drift must also pass the Kolmogorov-Smirnov test (`KS_P_VALUES`): a large PSI the test does
    not confirm is ok."""
    (warn, alert), (warn_p, alert_p) = THRESHOLDS[check], KS_P_VALUES
    if index >= alert and p_value < alert_p:
        return "alert", f"alert: PSI ≥ {alert:g} and KS p < {alert_p:g}"
    if index >= warn and p_value < warn_p:
        unconfirmed = f", not an alert as KS p ≥ {alert_p:g}" if index >= alert else ""
        return "warn", f"warning: PSI ≥ {warn:g} and KS p < {warn_p:g}{unconfirmed}"
    if index >= warn:
        return "ok", f"ok although PSI ≥ {warn:g}: KS p ≥ {warn_p:g}, the KS test does not confirm a change"
    return "ok", f"ok: PSI < {warn:g}"


def judged_by(check: str) -> str:
    """How a check's status is set, in words, from `THRESHOLDS` and the rules that apply them."""
    warn, alert = THRESHOLDS[check]
    if check in ("score_psi", "signal_psi"):
        warn_p, alert_p = KS_P_VALUES
        listed = (f" Per modality, the {TOP_SIGNALS} signals with the highest PSI are listed; a modality with fewer "
                  f"than {MIN_ITEMS} items on either side is not." if check == "signal_psi" else
                  f" Fewer than {MIN_ITEMS} items on either side: not judged (insufficient).")  # fmt: skip
        return (f"Warn at PSI ≥ {warn:g} with KS p < {warn_p:g}; alert at PSI ≥ {alert:g} with KS p < {alert_p:g}. "
                f"Otherwise ok, even a large PSI when the Kolmogorov-Smirnov test does not confirm it (p ≥ {warn_p:g}): "
                f"on small samples the PSI moves by chance, past these levels with no drift at all.{listed}")  # fmt: skip
    if check == "appeal_overturn_rate":
        return (f"The share of the period's decided appeals that were overturned, per rule of the appealed decision. "
                f"Warn at ≥ {warn:.0%}; alert at ≥ {alert:.0%}. Fewer than {MIN_APPEALS} appeals: not judged "
                f"(insufficient).")  # fmt: skip
    if check == "bank_reversal_share":
        return (f"The share of the period's bank changes that took an entry out (a reversed decision: a verdict or "
                f"appeal found the banked item was not a violation). Warn at ≥ {warn:.0%}; alert at ≥ {alert:.0%}. "
                f"No change in the period: not judged (insufficient).")  # fmt: skip
    share = {"dead_letter_rate_change": "a reason's share of items (dead letters and scored uploads)",
             "rule_volume_share_change": "a rule's share of the decisions",
             "match_rate_change": "the share of uploads matched (the bank, a suspended account's media, a campaign)"}[check]  # fmt: skip
    return (f"How far {share} moved between the reference and the period, either way, in percentage points. "
            f"Warn at ≥ {warn * 100:g} points; alert at ≥ {alert * 100:g} points.")  # fmt: skip


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
                          f"{len(before)} items; {drift_status('score_psi', figure['psi'], figure['ks_p_value'])[1]}")  # fmt: skip
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
            measured = sorted(((*drift(current[:, i], before[:, i], "signal_psi"), names[modality][i])
                               for i in range(current.shape[1])), reverse=True)[:TOP_SIGNALS]  # fmt: skip
            self.figures["signals"][modality] = [{"signal": n, "psi": v, "ks_p_value": p} for v, _, p, _, n in measured]
            for value, _, p_value, status, name in measured:
                self._add("signal_psi", f"{modality}:{name}", value, None, f"PSI {value:.3f} of the hand-made "
                          f"signal, KS p={p_value:.3g}; {drift_status('signal_psi', value, p_value)[1]}", status)  # fmt: skip

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
            value = r["k"] / r["n"] if r["n"] >= MIN_APPEALS else None
            self._add("appeal_overturn_rate", r["rule_id"], value, None, f"{r['k']} of {r['n']} appeals overturned")

    def matching(self) -> None:
        """The share of uploads the bank, the suspended accounts' media and campaigns matched,
        and the bank's changes, in the period and the reference."""
        from enforcement.bank import bank_as_of
        from pipelines.bank import bank_changes_of

        changes = {c.change_id: c for c in bank_changes_of(self.reader)}.values()
        figures: dict[str, Any] = {}
        for name, window in (("period", self.period), ("reference", self.reference)):
            uploads = self.reader.rows(
                f"SELECT COUNT(*) AS n FROM {LATEST_SCORES} AS s WHERE {window.sql('uploaded_at')}"
            )[0]["n"]
            side = {"uploads": uploads}
            for subject, (_, sql) in MATCHES.items():
                query = sql.format(scores=LATEST_SCORES, window=window.sql("s.uploaded_at"),
                                   first_seen=window.sql("first_seen"))  # fmt: skip
                side[subject] = int(self.reader.rows(query)[0]["n"] or 0)
            side["campaigns"] = self.reader.rows(
                f"SELECT COUNT(DISTINCT campaign_id) AS n FROM campaigns WHERE {window.sql('first_seen')}"
            )[0]["n"]
            within = [c for c in changes if window.start <= c.at < window.end]
            side["bank_added"] = sum(c.change == "add" for c in within)
            side["bank_removed"] = sum(c.change == "remove" for c in within)
            figures[name] = side
        figures["bank_entries"] = len(bank_as_of(changes, self.period.end - dt.timedelta(microseconds=1)))
        self.figures["matching"] = figures
        now, before = figures["period"], figures["reference"]
        for subject, (what, _) in MATCHES.items():
            share = now[subject] / now["uploads"] if now["uploads"] else None
            earlier = before[subject] / before["uploads"] if before["uploads"] else None
            value = abs(share - earlier) if share is not None and earlier is not None else None
            campaigns = (
                f" ({now['campaigns']} against {before['campaigns']} campaigns)" if subject == "campaign_member" else ""
            )
            self._add("match_rate_change", subject, value, earlier,
                      f"{now[subject]} of {now['uploads']} uploads {what} in the period, {before[subject]} of "
                      f"{before['uploads']} in the reference{campaigns}")  # fmt: skip
        changed = now["bank_added"] + now["bank_removed"]
        self._add("bank_reversal_share", "bank", now["bank_removed"] / changed if changed else None, None,
                  f"{now['bank_added']} entries added and {now['bank_removed']} taken out in the period "
                  f"({before['bank_added']} and {before['bank_removed']} in the reference); "
                  f"{figures['bank_entries']} entries at its end")  # fmt: skip

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
        from training.thresholds import choose_thresholds, load_costs

        def column(name):
            return np.array([np.nan if r[name] is None else r[name] for r in rows], dtype=float)

        scores = {"content": column("content_score"), "fused": column("fused_score")}
        points = choose_thresholds(labels, scores, load_costs(costs), ASSUMED_PREVALENCE, ASSUMED_DAILY_UPLOADS)
        self.figures["threshold_recommendation"] = {
            "drifted": drifted,
            "labelled_items": len(rows),
            "operating_points": [dataclasses.asdict(p) for p in points],
            "note": "a recommendation only: a person changes the policy",
        }


def _histogram_chart(report: Report) -> str:
    """Each score's distribution in the period over the reference's, as shares of items."""
    from matplotlib.ticker import PercentFormatter

    scores = report.figures["scores"]
    status = {c.subject: c.status for c in report.checks if c.check_name == "score_psi"}
    columns = 3
    rows = -(-len(scores) // columns)
    fig, axes = figure(rows, columns, (10.0, 3.0 * rows))
    axes = np.atleast_1d(axes).ravel()
    edges = np.linspace(0, 1, 21)
    for ax, (name, distribution) in zip(axes, scores.items()):
        for key, label in (("reference_histogram", f"reference, {report.reference}"),
                           ("histogram", f"period, {report.period}")):  # fmt: skip
            counts = np.asarray(distribution[key], dtype=float)
            ax.stairs(counts / max(counts.sum(), 1), edges, label=label)
        judged = f"PSI {distribution['psi']:.2f}, {status[name]}" if "psi" in distribution else "too few items to judge"
        ax.set_title(f"{name}: {judged}", fontsize=9)
        ax.set(xlabel="score", ylabel="share of items")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.tick_params(labelsize=8)
    for spare in axes[len(scores) :]:
        spare.axis("off")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return png_uri(fig)


def _value_text(check: str, value: float | None) -> str | None:
    if value is None:
        return None
    if check in ("dead_letter_rate_change", "rule_volume_share_change", "match_rate_change"):
        return f"{value * 100:.1f} points"
    return f"{value:.0%}" if check in ("appeal_overturn_rate", "bank_reversal_share") else f"{value:.2f}"


def _checks_section(check: str, checks: list[HealthCheck]) -> str:
    """One kind of check: how it is judged, then its rows, the most severe first."""
    heading, value_heading = CHECKS[check]
    rows = sorted((c for c in checks if c.check_name == check), key=lambda c: STATUS_ORDER.index(c.status))
    counts = _status_counts([c.status for c in rows])
    table = "".join(
        f"<tr class='{c.status}'><td>{html.escape(c.status)}</td><td>{html.escape(c.subject)}</td>"
        f"<td>{html.escape(_value_text(check, c.value) or 'n/a')}</td><td>{html.escape(c.detail)}</td></tr>"
        for c in rows
    )
    return (
        f"<h3>{html.escape(heading)}{f' ({counts})' if counts else ''}</h3>"
        f"<p class='rule'>{html.escape(judged_by(check))}</p>"
        + (f"<table class='checks'><tr><th>status</th><th>subject</th><th>{html.escape(value_heading)}</th>"
           f"<th>detail</th></tr>{table}</table>" if rows else "<p>No check of this kind in the period.</p>")
    )  # fmt: skip


def _status_counts(statuses: list[str]) -> str:
    return ", ".join(f"{status}: {statuses.count(status)}" for status in STATUS_ORDER if status in statuses)


def _agreement_section(figures: dict[str, Any]) -> str:
    agreement, appeals = figures.get("reviewer_agreement") or {}, figures.get("appeal_overturn_rate") or {}
    rows = [
        {"rule": rule, "verdicts": agreement.get(rule, {}).get("verdicts", 0),
         "agreement": percent(agreement.get(rule, {}).get("agreement")),
         "lower_bound": percent(agreement.get(rule, {}).get("lower_bound")),
         "appeals": appeals.get(rule, {}).get("appeals", 0), "rate": percent(appeals.get(rule, {}).get("rate"))}
        for rule in sorted(set(agreement) | set(appeals))
    ]  # fmt: skip
    return (
        "<p>Agreement: the share of blind reviewer verdicts that agree with the rule's automated decision, with the "
        "lower end of its 95% Wilson interval. Overturned: the share of the period's decided appeals against the "
        "rule's decisions that were overturned.</p>"
        + html_table(rows, AGREEMENT_COLUMNS, "No blind reviewer verdicts or decided appeals in the period.")
    )


def _recommendation_section(recommendation: dict[str, Any] | None) -> str:
    if not recommendation:
        return "<p>No score drifted past the alert threshold: nothing to re-derive.</p>"
    drifted = f"<p>Drifted past the alert threshold: {html.escape(', '.join(recommendation['drifted']))}.</p>"
    if "operating_points" not in recommendation:
        return drifted + f"<p>{html.escape(recommendation['note'])}.</p>"
    rows = [
        {**point, "threshold": f"{point['threshold']:.3f}", "expected_cost_per_item": f"{point['expected_cost_per_item']:.3f}",
         "precision": percent(point["precision"]), "recall": percent(point["recall"]),
         "false_positive_rate": percent(point["false_positive_rate"]), "daily_volume": f"{point['daily_volume']:,.0f}"}
        for point in recommendation["operating_points"]
    ]  # fmt: skip
    basis = (f"<p>Thresholds re-derived on the period's {recommendation['labelled_items']:,} labelled items, "
             f"{html.escape(recommendation['note'])}. Precision and the daily volume assume {ASSUMED_PREVALENCE:.0%} "
             f"synthetic uploads among {ASSUMED_DAILY_UPLOADS:,} a day.</p>")  # fmt: skip
    return drifted + basis + html_table(rows, OPERATING_POINT_COLUMNS)


def render_html(report: Report) -> str:
    """The checks as a page: each kind with the thresholds that judge it, then reviewers, appeals
    and any re-derived thresholds."""
    title = f"Signal health: {report.period} against {report.reference}"
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(report.checks)} checks of the period ({report.period}) against the reference "
        f"({report.reference}): {_status_counts([c.status for c in report.checks])}."
        f"{' Insufficient: too few items to judge.' if any(c.status == 'insufficient' for c in report.checks) else ''}"
        "</p>",
    ]
    if report.figures.get("scores"):
        sections.append(f'<img src="{_histogram_chart(report)}" alt="Score distributions, period over reference">')
    sections += [
        "<h2>Checks</h2>", *(_checks_section(check, report.checks) for check in CHECKS),
        "<h2>Reviewer agreement and appeals overturned, per rule</h2>", _agreement_section(report.figures),
        "<h2>Threshold recommendation</h2>", _recommendation_section(report.figures.get("threshold_recommendation")),
    ]  # fmt: skip
    return html_page(title, sections, PAGE_STYLE)


def period_windows(reader: WarehouseReader, period: str, end: dt.date | None, reference: str) -> tuple[Window, Window]:
    """The period up to `end` (default: the day after the newest upload) and its reference."""
    if end is None:
        newest = reader.query("SELECT MAX(uploaded_at) AS t FROM media_scores").to_pylist()[0]["t"]
        if newest is None:
            raise ValueError("the warehouse holds no scored uploads")
        end = as_utc(newest).date() + dt.timedelta(days=1)
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
    from warehouse.sinks import open_tool_sink

    open_tool_sink(warehouse, "health", bigquery_endpoint).write_records("signal_health", checks)


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m tools.signal_health", description=__doc__.split("\n\n")[0])
    add_flags(parser, "warehouse", "bigquery_endpoint", required=("warehouse",))
    parser.add_argument("--period_type", choices=sorted(PERIODS), default="week",
                        help="Length of the period judged, ending at --end (default %(default)s).")  # fmt: skip
    parser.add_argument("--end", type=dt.date.fromisoformat, default=None, help="First day after the period (UTC).")
    parser.add_argument("--reference", default="previous", help="previous (the period before) or START/END dates.")
    parser.add_argument("--costs", default="policies/error_costs.yaml", help="For re-derived thresholds.")
    parser.add_argument("--out", default="signal_health", help="Directory for signal_health.json and .html.")
    args = parser.parse_args(argv)
    try:
        reader = open_reader(args.warehouse, args.bigquery_endpoint)
        period, reference = period_windows(reader, args.period_type, args.end, args.reference)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(str(exc))
    report = Report(reader, period, reference)
    report.scores()
    report.signals()
    report.dead_letters()
    report.rules()
    report.matching()
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
