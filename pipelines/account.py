"""The account stage, shared by the batch and the streaming job: appeals and strikes; and what
both jobs write once it has run.

    account = account_stage(p, decisions, appeal_rows, history, policy, sink, streaming=...)
    write_decided(p, sink, decisions, statements, events, account, min_cell_count, failures)
    write_review_queue(sink, review_items, media_dir, limits, failures)

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
from apache_beam.transforms import window as beam_window

from enforcement.appeals import decision_from_row
from enforcement.bank import appeal_change, bankable_rules, decision_change
from enforcement.events import enforcement_events
from enforcement.policy import Policy
from enforcement.strikes import suspension_decision
from transforms.appeals import ApplyAppeals, SkipRecordedAppeals, parse_appeal
from transforms.campaigns import FindCampaigns, member_of
from transforms.dead_letter import FlatMapOrDeadLetter, MapOrDeadLetter
from transforms.hashbank import EvasionLink
from transforms.limits import MediaLimits
from transforms.parse import CountRowsRead
from transforms.review import (
    ApplyVerdicts,
    ConsultSecondOpinion,
    ExpandCampaignVerdicts,
    LogDecisions,
    RenderContactSheets,
    campaign_review_items,
    parse_verdict,
)
from transforms.statements import BuildStatements
from transforms.strikes import ReadStrikeLedger, TrackStrikesInState, UpdateStrikeLedger
from transforms.transparency import AggregateTransparency
from warehouse.sinks import History, Sink


@dataclasses.dataclass(frozen=True)
class AccountOutputs:
    decisions: beam.PCollection | None  # suspensions and reviewers' verdicts, decisions of their own
    events: list[beam.PCollection]  # reversals, verdicts' and suspensions' events, per target
    statements: beam.PCollection | None  # those decisions' statements of reasons
    appeal_outcomes: beam.PCollection | None
    dead_letters: list[beam.PCollection]
    log: list[beam.PCollection] = dataclasses.field(default_factory=list)  # decision-log entries so far


def _merged(parts: list[beam.PCollection], label: str) -> beam.PCollection:
    """One PCollection of `parts`: the one itself (the graph as it was before there were
    several), or their Flatten."""
    return parts[0] if len(parts) == 1 else tuple(parts) | label >> beam.Flatten()


def _known_decisions(p: beam.Pipeline, history: History, decisions: beam.PCollection, failures: list):
    """Earlier runs' decisions and this run's: what appeals and verdicts are joined to."""
    earlier, unreadable = (
        p
        | "ReadDecisionHistory" >> history.decisions
        | "ToDecisions" >> MapOrDeadLetter(decision_from_row, "read_decision_history")
    )
    failures.append(unreadable)
    return (earlier, decisions) | "DecisionHistory" >> beam.Flatten()


def account_stage(p: beam.Pipeline, decisions: beam.PCollection, appeal_rows: beam.PCollection | None,
                  history: History, policy: Policy, sink: Sink, streaming: bool = False,
                  admit: Callable[[beam.PCollection], tuple] | None = None,
                  review_rows: beam.PCollection | None = None,
                  campaigns: beam.PCollection | None = None) -> AccountOutputs:  # fmt: skip
    """Appeals (`appeal_rows`: RawRows, or None), reviewers' verdicts (`review_rows`, a
    campaign's applied to each of its members: this run's `campaigns` or earlier runs') and
    strikes on this run's `decisions`.

    `admit(elements, step=...)` (streaming): splits parsed appeals and verdicts into those
    within the allowed lateness and the dead letters of the others.
    """
    events, failures, log = [], [], []
    labels, strike_reversals, own_decisions, acting = [], [], [], [decisions]
    outcomes = known = None
    if appeal_rows is not None:
        parsed, invalid = appeal_rows | "ParseAppeals" >> MapOrDeadLetter(parse_appeal, "parse_appeals")
        failures.append(invalid)
        if admit is not None:
            parsed, too_late = admit(parsed, step="admit_appeals")
            failures.append(too_late)
        appeals, repeated = {
            "appeals": parsed,
            "recorded": p | "ReadAppealHistory" >> history.appeals,
        } | "SkipRecordedAppeals" >> SkipRecordedAppeals(streaming)
        known = _known_decisions(p, history, decisions, failures)
        applied = {"appeals": appeals, "decisions": known} | "ApplyAppeals" >> ApplyAppeals(streaming)
        outcomes = applied["outcomes"]
        failures += [repeated, applied["dead_letters"], sink.write("appeals", outcomes)]
        labels.append(applied["labels"])
        events.append(applied["reversals"])
        strike_reversals.append(applied["strike_reversals"])
    if review_rows is not None:
        counted = review_rows | "CountVerdictRows" >> beam.ParDo(CountRowsRead("verdict_rows_read"))
        parsed, invalid = counted | "ParseVerdicts" >> MapOrDeadLetter(parse_verdict, "parse_verdicts")
        failures.append(invalid)
        if admit is not None:
            parsed, too_late = admit(parsed, step="admit_verdicts")
            failures.append(too_late)
        if campaigns is None:
            campaigns = p | "NoCampaignsFound" >> beam.Create([])
        parsed, unknown_campaigns = {
            "verdicts": parsed,
            "campaigns": campaigns,
            "recorded": p | "ReadCampaignHistory" >> history.campaigns,
        } | "ExpandCampaignVerdicts" >> ExpandCampaignVerdicts(streaming)
        failures.append(unknown_campaigns)
        known = known or _known_decisions(p, history, decisions, failures)
        reviewed = {
            "verdicts": parsed,
            "recorded": p | "ReadReviewHistory" >> history.reviews,
            "decisions": known,
        } | "ApplyVerdicts" >> ApplyVerdicts(policy, streaming)
        failures += [reviewed["skipped"], reviewed["dead_letters"], sink.write("reviews", reviewed["outcomes"])]
        labels.append(reviewed["labels"])
        events.append(reviewed["events"])
        strike_reversals.append(reviewed["strike_reversals"])
        own_decisions.append(reviewed["decisions"])
        acting.append(reviewed["acting"])
        log.append(reviewed["log"])
    if labels:
        failures.append(sink.write("retraining_labels", _merged(labels, "AllRetrainingLabels")))
    strike_inputs = {"decisions": _merged(acting, "ActingDecisions")}
    if strike_reversals:
        strike_inputs["reversals"] = _merged(strike_reversals, "AllStrikeReversals")
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
        events.append(suspension_events)
        failures += [undecided, unrouted]
        own_decisions.append(suspended)
    account_decisions = statements = None
    if own_decisions:
        account_decisions = _merged(own_decisions, "AccountDecisions")
        statements, unstated = account_decisions | "AccountStatements" >> BuildStatements(policy.categories)
        failures.append(unstated)
    failures.append(sink.write("bank_changes", _bank_changes(decisions, account_decisions, outcomes, policy)))
    return AccountOutputs(account_decisions, events, statements, outcomes, failures, log)


def _bank_changes(decisions: beam.PCollection, account_decisions: beam.PCollection | None,
                  outcomes: beam.PCollection | None, policy: Policy) -> beam.PCollection:  # fmt: skip
    """What this run's decisions (content, verdicts) and appeal outcomes do to the bank of
    confirmed violations (`enforcement.bank`): the rows of `bank_changes`."""
    banking = bankable_rules(policy)
    changes = [
        _merged([d for d in (decisions, account_decisions) if d is not None], "DecisionsForTheBank")
        | "DecisionBankChanges" >> beam.FlatMap(lambda d: [c for c in [decision_change(d, banking)] if c])
    ]
    if outcomes is not None:
        changes.append(outcomes | "AppealBankChanges" >> beam.FlatMap(lambda o: [c for c in [appeal_change(o)] if c]))
    return _merged(changes, "BankChanges")


def write_decided(p: beam.Pipeline, sink: Sink, decisions: beam.PCollection, statements: list[beam.PCollection],
                  events: list[beam.PCollection], account: AccountOutputs, min_cell_count: int, failures: list,
                  new_decisions: bool = True, export_statements: bool = True,
                  windowing: beam.WindowInto | None = None) -> None:  # fmt: skip
    """The content decisions with the account stage's (suspensions, verdicts): decisions and
    statements written (only the account stage's when the run made no `new_decisions`: an
    appeals- or reviews-only run), statements handed to the Transparency Database export,
    every event published, every change in the decision log, and the transparency cells
    counted (in `windowing`'s windows, streaming). Appends the dead letters to `failures`."""
    all_decisions, statements = [decisions], list(statements)
    if account.decisions is not None:  # decisions of their own, with their events and statements
        all_decisions.append(account.decisions)
        statements.append(account.statements)
    decisions = tuple(all_decisions) | "ContentAndAccountDecisions" >> beam.Flatten(pipeline=p)
    statements = tuple(statements) | "AllStatements" >> beam.Flatten(pipeline=p)
    # A run without uploads writes the decisions of its verdicts (and the suspensions they
    # bring); an appeals-only run decides nothing new.
    written = (decisions, statements) if new_decisions else (account.decisions, account.statements)
    if new_decisions or account.log:
        failures.append(sink.write("enforcement_decisions", written[0]))
        failures.append(sink.write("statements_of_reasons", written[1]))
        if export_statements:
            sink.export_statements(written[1])
    failures.append(sink.publish_events([*events, *account.events], p))
    log = decisions | "LogDecisions" >> LogDecisions(account.appeal_outcomes, account.log)
    failures.append(sink.write("decision_log", log))
    cells, unaggregated = decisions | "AggregateTransparency" >> AggregateTransparency(
        min_cell_count, account.appeal_outcomes, windowing=windowing
    )
    failures += [unaggregated, sink.write("transparency_aggregates", cells)]


def write_campaigns(sink: Sink, features: beam.PCollection, policy: Policy, failures: list,
                    allowed_lateness_s: float = 0) -> beam.PCollection | None:  # fmt: skip
    """Campaigns among the uploads (`transforms.campaigns`), per the policy's `campaigns`
    section (none without one), into `campaigns`; returns them in the global window (what the
    review queue and the verdicts on campaigns join), or None without the section. Appends the
    dead letters to `failures`."""
    if policy.campaigns is None:  # the table is written all the same (empty), so readers find it
        failures.append(sink.write("campaigns", features.pipeline | "NoCampaigns" >> beam.Create([])))
        return None
    settings = policy.campaigns
    members, unread = features | "CampaignMembers" >> MapOrDeadLetter(member_of, "find_campaigns")
    campaigns = members | "FindCampaigns" >> FindCampaigns(settings.window_hours * 3600, settings.min_members,
                                                           settings.min_accounts, allowed_lateness_s,
                                                           (policy.policy_id, policy.version))  # fmt: skip
    failures += [unread, sink.write("campaigns", campaigns)]
    return campaigns | "CampaignsGlobally" >> beam.WindowInto(beam_window.GlobalWindows())


def write_evasion_links(sink: Sink, scores: beam.PCollection, failures: list) -> None:
    """The scored uploads whose media match a suspended account's, as `evasion_links` rows."""
    links = (
        scores
        | "PossibleEvasions" >> beam.Filter(lambda scored: scored.evasion_match is not None)
        | "EvasionLinks" >> beam.Map(EvasionLink)
    )
    failures.append(sink.write("evasion_links", links))


def write_review_queue(sink: Sink, review_items: beam.PCollection, media_dir: str | None, limits: MediaLimits,
                       failures: list, second_opinion: str | None = None, policy: Policy | None = None,
                       accelerator: str | None = None, campaigns: beam.PCollection | None = None) -> None:  # fmt: skip
    """The review queue's rows, one per campaign among them (`campaigns`, with a `policy`),
    each visual item's with a contact sheet under `media_dir` (none without one) and, with a
    `second_opinion` model, its answer. Appends the dead letters to `failures`."""
    if campaigns is not None:
        review_items = (review_items, campaign_review_items(campaigns, policy)) | "AllReviewItems" >> beam.Flatten()
    if media_dir:
        review_items = review_items | "RenderContactSheets" >> RenderContactSheets(media_dir, limits)
    if second_opinion:
        review_items = review_items | "ConsultSecondOpinion" >> ConsultSecondOpinion(
            second_opinion, policy, accelerator
        )
    failures.append(sink.write("review_queue", review_items))
