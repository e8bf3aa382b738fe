"""Strikes: weights per action, expiry, suspension, reversal on appeal, idempotent reruns."""

from __future__ import annotations

import dataclasses
import datetime as dt

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from enforcement.policy import PolicyError, StrikePolicy
from enforcement.strikes import Strike, merge_ledger, reverse, standing, strike_for
from schemas.records import Decision
from transforms.strikes import UpdateStrikeLedger

from .conftest import batch_pipeline

POLICY = StrikePolicy({"remove": 1.0, "reduce_reach": 0.5, "label": 0.0}, window_days=90, suspend_at=2.0)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def decision(action: str, day: int, decision_id: str | None = None, account: str = "a1") -> Decision:
    at = T0 + dt.timedelta(days=day)
    return Decision(decision_id or f"d-{action}-{day}", f"c{day}", account, action, None, "r", "p", "1", 0.99,
                    "automated", "fully", "video", None, None, at, at, ())  # fmt: skip


@pytest.mark.parametrize("action, weight", [("remove", 1.0), ("reduce_reach", 0.5), ("label", None), ("none", None)])
def test_each_action_weighs_what_the_policy_says(action, weight):
    strike = strike_for(decision(action, 0), POLICY)
    assert (strike.weight if strike else None) == weight


def test_strikes_add_up_to_suspension_and_expire_after_the_window():
    strikes = [strike_for(decision("remove", 0), POLICY), strike_for(decision("remove", 10), POLICY)]
    assert standing("a1", strikes, T0 + dt.timedelta(days=11), POLICY).suspended
    later = standing("a1", strikes, T0 + dt.timedelta(days=95), POLICY)  # the first has expired
    assert (later.active_points, later.suspended) == (1.0, False)


def test_an_overturned_decision_takes_its_strike_back_but_keeps_the_row():
    strikes = [strike_for(decision("remove", 0), POLICY), strike_for(decision("remove", 1), POLICY)]
    reversed_ledger = reverse(strikes, "d-remove-0", T0 + dt.timedelta(days=2))
    assert len(reversed_ledger) == 2 and reversed_ledger[0].reversed_at is not None
    assert not standing("a1", reversed_ledger, T0 + dt.timedelta(days=3), POLICY).suspended


def test_a_rerun_adds_no_strike_twice():
    strike = strike_for(decision("remove", 0), POLICY)
    assert merge_ledger([strike], [strike, dataclasses.replace(strike)]) == [strike]


def test_ledger_rows_round_trip():
    strike = reverse([strike_for(decision("remove", 0), POLICY)], "d-remove-0", T0)[0]
    assert Strike.from_row(strike.to_row()) == strike


def test_bad_strike_settings_name_the_field():
    with pytest.raises(PolicyError, match=r"strikes\.suspend_at"):
        StrikePolicy.parse({"weights": {"remove": 1}, "window_days": 90, "suspend_at": 0})
    with pytest.raises(PolicyError, match=r"strikes\.weights"):
        StrikePolicy.parse({"weights": {"remove": -1}, "window_days": 90, "suspend_at": 2})


def test_the_ledger_transform_reports_accounts_crossing_into_suspension():
    prior = [strike_for(decision("remove", 0, account="a1"), POLICY)]
    decisions = [decision("remove", 5, account="a1"), decision("remove", 5, account="a2"), decision("label", 5)]
    with batch_pipeline() as p:
        ledger, suspensions, dead_letters = {
            "prior": p | "Prior" >> beam.Create(prior),
            "decisions": p | "Decisions" >> beam.Create(decisions),
        } | UpdateStrikeLedger(POLICY)
        assert_that(ledger | beam.Map(lambda s: (s.account_id, s.decision_id)),
                    equal_to([("a1", "d-remove-0"), ("a1", "d-remove-5"), ("a2", "d-remove-5")]), label="ledger")  # fmt: skip
        assert_that(suspensions | beam.Map(lambda s: (s.standing.account_id, s.standing.active_points)), equal_to([("a1", 2.0)]),
                    label="suspended")  # fmt: skip
        assert_that(dead_letters, equal_to([]), label="nothing dead-lettered")


def _earned(decisions, decided_at):
    """Strikes as a run at `decided_at` issues them (the run's clock), with their decisions."""
    pairs = []
    for d in decisions:
        run_decision = dataclasses.replace(d, decided_at=decided_at)
        pairs.append((strike_for(run_decision, POLICY), run_decision))
    return pairs


def test_a_suspension_comes_from_the_decision_that_crossed_the_threshold_not_the_run_clock():
    from enforcement.policy import load_policy
    from enforcement.strikes import suspension_decision, update_account

    policy = load_policy("policies/synthetic_media_v1.yaml")
    # Three removals uploaded on days 1, 2 and 3 (threshold 2.0): the day-2 one crosses.
    decisions = [decision("remove", day) for day in (3, 1, 2)]
    outcomes = []
    for run_clock in (T0 + dt.timedelta(days=10), T0 + dt.timedelta(days=11, hours=5)):
        _, suspension = update_account("a1", [], _earned(decisions, run_clock), [], POLICY)
        assert suspension is not None and suspension.crossing.decision_id == "d-remove-2"
        outcomes.append(suspension_decision(suspension, policy))
    first, rerun = outcomes
    assert first == rerun  # the same id and time whenever the job runs
    assert first.decided_at == T0 + dt.timedelta(days=2) and first.action == "suspend_account"
    assert first.targets == ("account_enforcement",) and first.content_id == ""


def test_a_suspension_has_its_own_statement_of_reasons():
    from enforcement.policy import load_policy
    from enforcement.statements import statement_of_reasons, validate_statement
    from enforcement.strikes import suspension_decision, update_account

    policy = load_policy("policies/synthetic_media_v1.yaml")
    _, suspension = update_account("a1", [], _earned([decision("remove", d) for d in (1, 2)], T0), [], POLICY)
    suspended = suspension_decision(suspension, policy)
    statement = statement_of_reasons(suspended, "STATEMENT_CATEGORY_OTHER_VIOLATION_TC")
    validate_statement(statement)
    assert statement["decision_account"] == "DECISION_ACCOUNT_SUSPENDED" and "decision_visibility" not in statement
    assert statement["puid"] == suspended.decision_id


def test_a_ledger_holding_a_strike_twice_keeps_its_reversed_copy():
    strike = strike_for(decision("remove", 0), POLICY)
    reversed_copy = reverse([strike], "d-remove-0", T0 + dt.timedelta(days=1))[0]
    for prior in ([strike, reversed_copy], [reversed_copy, strike]):  # whichever order the rows are read in
        assert merge_ledger(prior, []) == [reversed_copy]


def test_a_prior_ledger_read_over_every_run_counts_each_strike_once():
    """The warehouse's ledger over all runs holds a strike once per run that wrote it: the
    copies are one strike, so an account one strike short of suspension is not suspended by
    its own history read twice, and the next strike does suspend it."""
    from enforcement.strikes import update_account

    first = strike_for(decision("remove", 0), POLICY)
    copies = [first, first, first]  # three runs wrote the account's ledger
    nothing_new, suspension = update_account("a1", copies, [], [], POLICY)
    assert nothing_new == [first] and suspension is None
    half = decision("reduce_reach", 1)
    _, suspension = update_account("a1", copies, [(strike_for(half, POLICY), half)], [], POLICY)
    assert suspension is None  # 1.5 points, not 3.5
    second = decision("remove", 2)
    ledger, suspension = update_account("a1", copies, [(strike_for(second, POLICY), second)], [], POLICY)
    assert suspension is not None and suspension.crossing.decision_id == second.decision_id
    assert len(ledger) == 2


def test_the_current_ledger_view_holds_every_runs_strikes_once(tmp_path):
    """strike_ledger_current over runs that each wrote only the accounts they changed."""
    import duckdb

    from warehouse.embedded import write_catalog

    from .conftest import seed_table

    runs = {
        "run1": [strike_for(decision("remove", 0, account="a1"), POLICY)],
        "run2": [strike_for(decision("remove", 1, account="a2"), POLICY)],
        "run3": [dataclasses.replace(strike_for(decision("remove", 0, account="a1"), POLICY), reversed_at=T0)],
    }
    for run_id, strikes in runs.items():
        seed_table(tmp_path, "strike_ledger", [{**s.to_row(), "run_id": run_id} for s in strikes])
        (tmp_path / "strike_ledger" / "seed-00000-of-00001.parquet").rename(
            tmp_path / "strike_ledger" / f"{run_id}-00000-of-00001.parquet"
        )
    catalog = write_catalog(str(tmp_path))
    with duckdb.connect(str(catalog), read_only=True) as con:
        rows = con.sql("select account_id, reversed_at is not null from strike_ledger_current order by 1").fetchall()
    assert rows == [("a1", True), ("a2", False)]


def test_a_replayed_decision_brings_back_the_suspension_it_crossed_into():
    """A restart replays a decision whose strike reached the ledger before the crash but whose
    suspension did not: the suspension comes again, with the same id, rather than never."""
    from enforcement.strikes import update_account

    first, second = decision("remove", 0), decision("remove", 1)
    written = [strike_for(first, POLICY), strike_for(second, POLICY)]  # the ledger before the crash
    _, suspension = update_account("a1", written, [(strike_for(second, POLICY), second)], [], POLICY)
    assert suspension is not None and suspension.crossing.decision_id == second.decision_id
    # A decision that earns nothing new on an account already over the threshold suspends nothing.
    third = decision("remove", 2)
    _, again = update_account("a1", [*written, strike_for(third, POLICY)], [], [], POLICY)
    assert again is None
