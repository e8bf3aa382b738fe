"""The account stage, shared by the batch and the streaming job: appeals and strikes; and what
both jobs write once it has run.

    account = account_stage(p, decisions, appeal_rows, history, policy, sink, streaming=...)
    write_decided(p, sink, decisions, statements, events, account, min_cell_count, failures)

It starts from the warehouse's earlier decisions, appeals and strike ledger (`history`) and
this run's decisions; appeal outcomes reverse decisions downstream, label items for retraining
and take strikes back; strikes that cross the policy's threshold suspend the account, a
decision of its own with its events and statement. Batch groups its whole input; streaming
(`streaming=True`) uses the keyed-state forms of the same transforms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import apache_beam as beam

from enforcement.appeals import decision_from_row
from enforcement.events import enforcement_events
from enforcement.policy import Policy
from enforcement.strikes import suspension_decision
from pipelines.sinks import History, Sink
from transforms.appeals import ApplyAppeals, SkipRecordedAppeals, parse_appeal
from transforms.dead_letter import FlatMapOrDeadLetter, MapOrDeadLetter
from transforms.statements import BuildStatements
from transforms.strikes import ReadStrikeLedger, TrackStrikesInState, UpdateStrikeLedger
from transforms.transparency import AggregateTransparency


@dataclasses.dataclass(frozen=True)
class AccountOutputs:
    decisions: beam.PCollection | None  # account suspensions, decisions of their own
    events: list[beam.PCollection]  # reversals and suspensions, per target
    statements: beam.PCollection | None  # the suspensions' statements of reasons
    appeal_outcomes: beam.PCollection | None
    dead_letters: list[beam.PCollection]


def account_stage(p: beam.Pipeline, decisions: beam.PCollection, appeal_rows: beam.PCollection | None,
                  history: History, policy: Policy, sink: Sink, streaming: bool = False,
                  admit: Callable[[beam.PCollection], tuple] | None = None) -> AccountOutputs:  # fmt: skip
    """Appeals (`appeal_rows`: RawRows, or None) and strikes on this run's `decisions`.

    `admit` (streaming): splits parsed appeals into those within the allowed lateness and the
    dead letters of the others.
    """
    events, failures, strike_inputs = [], [], {"decisions": decisions}
    outcomes = suspended = statements = None
    if appeal_rows is not None:
        parsed, invalid = appeal_rows | "ParseAppeals" >> MapOrDeadLetter(parse_appeal, "parse_appeals")
        failures.append(invalid)
        if admit is not None:
            parsed, too_late = admit(parsed)
            failures.append(too_late)
        appeals, repeated = {
            "appeals": parsed,
            "recorded": p | "ReadAppealHistory" >> history.appeals,
        } | "SkipRecordedAppeals" >> SkipRecordedAppeals(streaming)
        earlier, unreadable = (
            p
            | "ReadDecisionHistory" >> history.decisions
            | "ToDecisions" >> MapOrDeadLetter(decision_from_row, "read_decision_history")
        )
        known = (earlier, decisions) | "DecisionHistory" >> beam.Flatten()
        applied = {"appeals": appeals, "decisions": known} | "ApplyAppeals" >> ApplyAppeals(streaming)
        outcomes = applied["outcomes"]
        failures += [repeated, unreadable, applied["dead_letters"]]
        failures += [sink.write("appeals", outcomes), sink.write("retraining_labels", applied["labels"])]
        events.append(applied["reversals"])
        strike_inputs["reversals"] = applied["strike_reversals"]
    if policy.strikes is not None:
        strike_inputs["prior"] = p | "ReadStrikeLedger" >> ReadStrikeLedger(history.ledger)
        update = TrackStrikesInState(policy.strikes) if streaming else UpdateStrikeLedger(policy.strikes)
        ledger, suspensions, unupdated = strike_inputs | "UpdateStrikes" >> update
        failures += [unupdated, sink.write("strike_ledger", ledger)]
        suspended, undecided = suspensions | "SuspendAccounts" >> MapOrDeadLetter(
            suspension_decision, "suspend_account", policy=policy
        )
        suspension_events, unrouted = suspended | "SuspensionEvents" >> FlatMapOrDeadLetter(
            enforcement_events, "fan_out_enforcement"
        )
        statements, unstated = suspended | "AccountStatements" >> BuildStatements(policy.categories)
        events.append(suspension_events)
        failures += [undecided, unrouted, unstated]
    return AccountOutputs(suspended, events, statements, outcomes, failures)


def write_decided(p: beam.Pipeline, sink: Sink, decisions: beam.PCollection, statements: list[beam.PCollection],
                  events: list[beam.PCollection], account: AccountOutputs, min_cell_count: int, failures: list,
                  new_decisions: bool = True, export_statements: bool = True,
                  windowing: beam.WindowInto | None = None) -> None:  # fmt: skip
    """The content decisions with the account stage's suspensions: decisions and statements
    written (unless the run made no `new_decisions`: an appeals-only run), statements handed to
    the Transparency Database export, every event published, and the transparency cells
    counted (in `windowing`'s windows, streaming). Appends the dead letters to `failures`."""
    all_decisions, statements = [decisions], list(statements)
    if account.decisions is not None:  # suspensions: decisions with their events and statements
        all_decisions.append(account.decisions)
        statements.append(account.statements)
    decisions = tuple(all_decisions) | "ContentAndAccountDecisions" >> beam.Flatten(pipeline=p)
    statements = tuple(statements) | "AllStatements" >> beam.Flatten(pipeline=p)
    if new_decisions:
        failures.append(sink.write("enforcement_decisions", decisions))
        failures.append(sink.write("statements_of_reasons", statements))
        if export_statements:
            sink.export_statements(statements)
    failures.append(sink.publish_events([*events, *account.events], p))
    cells, unaggregated = decisions | "AggregateTransparency" >> AggregateTransparency(
        min_cell_count, account.appeal_outcomes, windowing=windowing
    )
    failures += [unaggregated, sink.write("transparency_aggregates", cells)]
