"""The end-of-job account: every input row is scored, dead-lettered or skipped, with reasons.

Rows read come from the job's metrics; the other side is counted from what this run
actually wrote to the warehouse, so a row lost between a step and the sink shows up.
"""

from __future__ import annotations

import dataclasses

from apache_beam.metrics.metric import MetricsFilter

from schemas.records import DEAD_LETTER, SKIPPED
from schemas.vocabulary import SUSPEND_ACTION
from warehouse.reader import query_hint

# Dead letters of the appeals input: not upload rows, so outside the upload reconciliation.
APPEAL_STEPS = frozenset({"read_appeals", "parse_appeals", "admit_appeals", "dedupe_appeals", "apply_appeals", "read_decision_history",
                          "write_appeals", "write_retraining_labels"})  # fmt: skip
# Dead letters and skips of the reviewers' verdicts: balanced against the verdict rows read.
REVIEW_STEPS = frozenset(
    {"read_verdicts", "parse_verdicts", "admit_verdicts", "dedupe_verdicts", "apply_verdicts", "write_reviews"}
)
# Steps that keep an upload from being scored: its row's dead letter balances the rows read.
# A failure after an item was scored (deciding, events, statements, strikes, aggregates, a
# write) is reported too, but the row is already counted as scored; a failure to decide, or to
# write the decision, is counted against the scored items instead (the second balance).
DECISION_STEPS = frozenset({"decide", "write_enforcement_decisions"})
AFTER_SCORING_STEPS = DECISION_STEPS | {
    "fan_out_enforcement", "publish_events", "statements_of_reasons", "update_strikes", "aggregate_transparency",
    "suspend_account", "write_features", "write_training_examples", "write_enforcement_events",
    "write_statements_of_reasons", "write_strike_ledger", "write_transparency_aggregates",
    "decide_shadow", "write_shadow_decisions", "write_review_queue", "write_decision_log",
    "write_message_deliveries",
}  # fmt: skip


def stage_of(step: str) -> str:
    """Which account a dead letter of `step` belongs to: uploads, after scoring, appeals or reviews."""
    if step in APPEAL_STEPS:
        return "appeals"
    if step in REVIEW_STEPS:
        return "reviews"
    return "after scoring" if step in AFTER_SCORING_STEPS else "uploads"


@dataclasses.dataclass(frozen=True)
class Reconciliation:
    rows_read: int
    scored: int
    dead_lettered: int
    skipped: int
    reasons: tuple[tuple[str, str, str, int], ...]  # (disposition, step, error_type, count)
    actions: tuple[tuple[str, int], ...]
    appeal_outcomes: tuple[tuple[str, int], ...] = ()  # (upheld | overturned, count)
    undecided: int = 0  # scored items whose decision failed (dead-lettered at `DECISION_STEPS`)
    verdicts_read: int = 0
    verdicts: tuple[tuple[str, int], ...] = ()  # (verdict action, count) applied this run
    # A verdict on a campaign is one row read and one verdict per member: the members beyond the first.
    member_verdicts: int = 0
    # A features-only run: `scored` counts the uploads whose features were written; nothing is decided.
    features_only: bool = False

    @property
    def verdicts_applied(self) -> int:
        return sum(n for _, n in self.verdicts)

    @property
    def decided(self) -> int:
        """Scored items decided (account suspensions and reviewers' verdicts are decisions too,
        but not of an upload scored in this run)."""
        return sum(n for action, n in self.actions if action != SUSPEND_ACTION) - self.verdicts_applied

    @property
    def verdicts_turned_away(self) -> int:
        return sum(n for _, step, _, n in self.reasons if stage_of(step) == "reviews")

    @property
    def balanced(self) -> bool:
        """Every row read is scored, dead-lettered or skipped, every scored item decided or
        dead-lettered on the way, and every verdict row applied, dead-lettered or skipped."""
        uploads = self.rows_read == self.scored + self.dead_lettered + self.skipped
        if self.features_only:
            return uploads and not self.actions
        verdicts = self.verdicts_read + self.member_verdicts == self.verdicts_applied + self.verdicts_turned_away
        return uploads and self.scored == self.decided + self.undecided and verdicts


def rows_read(result, name: str = "rows_read") -> int:
    """Input rows the job counted (committed; attempted where a runner commits later, as the
    local streaming runner does for a job it was asked to stop); `verdict_rows_read` for the
    reviewers' verdicts."""
    counters = result.metrics().query(MetricsFilter().with_namespace("reconcile").with_name(name))["counters"]
    return int(sum(max(c.committed or 0, c.attempted or 0) for c in counters))


def reconcile(read: int, sink, verdicts_read: int = 0, member_verdicts: int = 0,
              features_only: bool = False) -> Reconciliation:  # fmt: skip
    """Counts what the sink's run wrote and balances it against the rows it read (a
    features-only run's uploads against the features it wrote)."""
    scored = sum(n for _, n in sink.run_counts("features" if features_only else "media_scores", "media_type"))
    reasons = sink.run_counts("dead_letter", "disposition, step, error_type")
    return Reconciliation(
        rows_read=read,
        scored=scored,
        dead_lettered=sum(n for d, step, _, n in reasons if d == DEAD_LETTER and stage_of(step) == "uploads"),
        skipped=sum(n for d, step, _, n in reasons if d == SKIPPED and stage_of(step) == "uploads"),
        undecided=sum(n for d, step, _, n in reasons if d == DEAD_LETTER and step in DECISION_STEPS),
        reasons=reasons,
        actions=sink.run_counts("enforcement_decisions", "action"),
        appeal_outcomes=sink.run_counts("appeals", "outcome"),
        verdicts_read=verdicts_read,
        verdicts=sink.run_counts("reviews", "verdict_action") if verdicts_read else (),
        member_verdicts=member_verdicts,
        features_only=features_only,
    )


def format_summary(summary: Reconciliation, catalog: str, model_set, uploads: bool = True) -> str:
    """The end-of-run summary; `uploads` is False for an appeals-only run."""
    outcome = "features written" if summary.features_only else "scored"
    lines = [
        f"rows read {summary.rows_read} = {outcome} {summary.scored} + dead-lettered {summary.dead_lettered}"
        f" + skipped {summary.skipped}  [{'balanced' if summary.balanced else 'UNBALANCED'}]",
    ]
    if (summary.scored or summary.undecided) and not summary.features_only:
        lines.append(f"scored {summary.scored} = decided {summary.decided} + dead-lettered {summary.undecided}")
    for disposition, step, error_type, count in summary.reasons:
        stage = stage_of(step)
        note = {"appeals": "  (appeals input)", "after scoring": "  (after scoring)",
                "reviews": "  (verdicts input)"}.get(stage, "")  # fmt: skip
        lines.append(f"  {disposition:<11} {step:<18} {error_type:<28} {count}{note}")
    if not uploads:
        lines.append("run without uploads: no uploads scored" + ("; each verdict a decision of its own"
                     if summary.verdicts_read else ", no new decisions"))  # fmt: skip
    elif model_set.models:
        lines.append("models: " + model_set.describe())
    else:
        lines.append("models: none (features-only run: features for training; nothing scored, decided or enforced)")
    if uploads and not summary.features_only:
        lines.append("decisions by action:")
        for action, count in summary.actions:
            lines.append(f"  {action:<13} {count}")
    if summary.verdicts_read:
        lines.append(
            f"verdicts read {summary.verdicts_read}"
            + (f" + {summary.member_verdicts} for campaigns' further members" if summary.member_verdicts else "")
            + f" = applied {summary.verdicts_applied} + dead-lettered or skipped {summary.verdicts_turned_away}"
        )
        for action, count in summary.verdicts:
            lines.append(f"  verdict {action:<13} {count}")
    if summary.appeal_outcomes:
        lines.append("appeals by outcome:")
        for outcome, count in summary.appeal_outcomes:
            lines.append(f"  {outcome:<13} {count}")
    lines.append(f"warehouse: {catalog}")
    column, table = ("media_type", "features") if summary.features_only else ("action", "enforcement_decisions")
    lines.append(f"  query it: {query_hint(catalog, f'select {column}, count(*) from {{}} group by 1', table)}")
    return "\n".join(lines)


# --- The streaming job's account over its subscription's history ------------------------


@dataclasses.dataclass(frozen=True)
class SubscriptionAccount:
    """Every message a subscription delivered to any run of the job, each by its outcome over
    all those runs: scored, dead-lettered, skipped, or lost (delivered, no outcome anywhere)."""

    subscription: str
    runs: int
    outcomes: tuple[tuple[str, int, int], ...]  # (outcome, messages, deliveries)

    def messages(self, outcome: str | None = None) -> int:
        return sum(n for o, n, _ in self.outcomes if outcome is None or o == outcome)

    @property
    def deliveries(self) -> int:
        return sum(d for *_, d in self.outcomes)

    @property
    def lost(self) -> int:
        return self.messages(LOST)

    def line(self, published: int | None = None) -> str:
        """The summary line; `published`: what the caller knows it published."""
        parts = " + ".join(f"{name} {self.messages(o)}" for o, name in
                           ((SCORED, "scored"), (DEAD_LETTER, "dead-lettered"), (SKIPPED, "skipped")))  # fmt: skip
        lost = f" + LOST {self.lost}" if self.lost else ""
        undelivered = (published or 0) - self.messages()
        missing = f"; published {published}, {undelivered} not yet delivered" if undelivered > 0 else ""
        verdict = "balanced" if not self.lost and undelivered <= 0 else "UNBALANCED"
        return (f"subscription {self.subscription} over {self.runs} run(s): messages {self.messages()} "
                f"(deliveries {self.deliveries}) = {parts}{lost}{missing}  [{verdict}]")  # fmt: skip


SCORED, LOST = "scored", "lost"
_NOT_UPLOAD_STEPS = sorted(APPEAL_STEPS | REVIEW_STEPS | AFTER_SCORING_STEPS)


def _literal(subscription: str) -> str:
    """A subscription path inside a SQL string literal (the launcher checked its form; a quote
    could only end the literal, so none is kept)."""
    return subscription.replace("'", "")


def _by_message(sink, subscription: str) -> str:
    """SQL: one row per message delivered on `subscription` (message_id, outcome, deliveries),
    the same text on DuckDB and BigQuery."""
    deliveries, scores, dead = (sink.all_runs(t) for t in ("message_deliveries", "media_scores", "dead_letter"))
    sub = _literal(subscription)
    steps = ", ".join(f"'{s}'" for s in _NOT_UPLOAD_STEPS)
    return (
        f"WITH delivered AS (SELECT message_id, ANY_VALUE(content_id) AS content_id, COUNT(*) AS deliveries "
        f"FROM {deliveries} WHERE subscription = '{sub}' GROUP BY message_id), "
        f"runs AS (SELECT DISTINCT run_id FROM {deliveries} WHERE subscription = '{sub}'), "
        f"scored AS (SELECT DISTINCT content_id FROM {scores} WHERE run_id IN (SELECT run_id FROM runs)), "
        f"turned AS (SELECT content_id, message_id, disposition FROM {dead} "
        f"WHERE run_id IN (SELECT run_id FROM runs) AND step NOT IN ({steps})), "
        f"by_message AS (SELECT message_id, MIN(disposition) AS disposition FROM turned "
        f"WHERE message_id IS NOT NULL GROUP BY message_id), "
        f"by_content AS (SELECT content_id, MIN(disposition) AS disposition FROM turned "
        f"WHERE content_id IS NOT NULL GROUP BY content_id) "
        f"SELECT d.message_id, CASE WHEN s.content_id IS NOT NULL THEN '{SCORED}' "
        f"ELSE COALESCE(m.disposition, c.disposition, '{LOST}') END AS outcome, d.deliveries "
        f"FROM delivered d LEFT JOIN scored s ON s.content_id = d.content_id "
        f"LEFT JOIN by_message m ON m.message_id = d.message_id "
        f"LEFT JOIN by_content c ON c.content_id = d.content_id"
    )


def subscription_account(sink, subscription: str) -> SubscriptionAccount:
    """What every message `subscription` delivered became, over all runs of the job."""
    rows = sink.query(f"SELECT outcome, COUNT(*), SUM(deliveries) FROM ({_by_message(sink, subscription)}) AS m "
                      "GROUP BY outcome ORDER BY outcome")  # fmt: skip
    runs = sink.query(
        f"SELECT COUNT(DISTINCT run_id) FROM {sink.all_runs('message_deliveries')} "
        f"WHERE subscription = '{_literal(subscription)}'"
    )[0][0]
    return SubscriptionAccount(subscription, int(runs), tuple((o, int(n), int(d)) for o, n, d in rows))


def unfinished_deliveries(sink, subscription: str) -> dict[str, int]:
    """Messages delivered to earlier runs that have no outcome yet (a replay is due), with how
    many times each was delivered: the door's attempt count."""
    rows = sink.query(f"SELECT message_id, deliveries FROM ({_by_message(sink, subscription)}) AS m "
                      f"WHERE outcome = '{LOST}'")  # fmt: skip
    return {message_id: int(n) for message_id, n in rows}
