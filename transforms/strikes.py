"""Account strikes as Beam transforms: each account's ledger updated by key
(`enforcement.strikes` holds the rules), suspensions as a second output.

Batch groups the run's new strikes with the prior ledger (`UpdateStrikeLedger`); streaming
keeps each account's ledger in keyed state and updates it as decisions arrive, in event time
(`TrackStrikesInState`). Both call `enforcement.strikes.update_account`.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.transforms import userstate
from apache_beam.utils.timestamp import Timestamp

from enforcement.policy import StrikePolicy
from enforcement.strikes import Strike, reverse, strike_for, update_account
from schemas.records import Decision
from transforms.dead_letter import DEAD, Guarded, dead_letter_for


class _UpdateAccount(beam.DoFn):
    def __init__(self, policy: StrikePolicy):
        self._policy = policy

    def process(self, keyed):
        account_id, grouped = keyed
        ledger, suspension = update_account(
            account_id, grouped["prior"], grouped["new"], grouped.get("reversals", []), self._policy
        )
        yield from ledger
        if suspension is not None:
            yield beam.pvalue.TaggedOutput("suspensions", suspension)


def _keyed(strike: Strike) -> tuple[str, Strike]:
    return strike.account_id, strike


def _keyed_earned(earned: tuple[Strike, Decision]) -> tuple[str, tuple[Strike, Decision]]:
    return earned[0].account_id, earned


class UpdateStrikeLedger(beam.PTransform):
    """(prior strikes, decisions) -> the new ledger and the accounts that crossed into suspension
    (`enforcement.strikes.Suspension`).

    Takes a dict {"prior": PCollection[Strike], "decisions": PCollection[Decision]} and,
    optionally, "reversals": PCollection[(account_id, (decision_id, reversed_at))] from appeals;
    returns (ledger, suspensions, dead letters): an account whose ledger cannot be updated is a
    dead letter (step `update_strikes`) with its strikes, not the job's failure.
    """

    def __init__(self, policy: StrikePolicy):
        super().__init__()
        self._policy = policy

    def expand(self, inputs):
        new = inputs["decisions"] | "EarnStrikes" >> beam.FlatMap(_earned, policy=self._policy)
        outputs = (
            {
                "prior": inputs["prior"] | "KeyPrior" >> beam.Map(_keyed),
                "new": new | "KeyNew" >> beam.Map(_keyed_earned),
                **({"reversals": inputs["reversals"]} if "reversals" in inputs else {}),
            }
            | "ByAccount" >> beam.CoGroupByKey()
            | "Update"
            >> beam.ParDo(Guarded(_UpdateAccount(self._policy), "update_strikes")).with_outputs(
                "suspensions", DEAD, main="ledger"
            )
        )
        return outputs.ledger, outputs.suspensions, outputs[DEAD]


def _earned(decision: Decision, policy: StrikePolicy):
    strike = strike_for(decision, policy)
    if strike is not None:
        yield strike, decision


class ReadStrikeLedger(beam.PTransform):
    """Reads a strike ledger into `Strike`s, from a reader of `strike_ledger` rows (Parquet files
    of the embedded warehouse, a BigQuery query)."""

    def __init__(self, rows: beam.PTransform):
        super().__init__()
        self._rows = rows

    def expand(self, pipeline):
        return pipeline | "ReadLedger" >> self._rows | "ToStrikes" >> beam.Map(Strike.from_row)


class _AccountLedgerInState(beam.DoFn):
    """Streaming: one account's strikes in keyed state. A prior strike (the warehouse's
    ledger at start) joins the state; a decision that earns a strike updates the ledger as the
    batch job would, emits the account's ledger and, on crossing the threshold, the suspension.
    An event-time timer at the next expiry drops strikes that can no longer count."""

    LEDGER = userstate.BagStateSpec("ledger", beam.coders.PickleCoder())
    EXPIRY = userstate.TimerSpec("expiry", beam.TimeDomain.WATERMARK)

    def __init__(self, policy: StrikePolicy):
        self._policy = policy

    def process(self, keyed, ledger=beam.DoFn.StateParam(LEDGER), expiry=beam.DoFn.TimerParam(EXPIRY)):
        account_id, (kind, value) = keyed
        if kind == "prior":
            ledger.add(value)
            return
        if kind == "reversal":  # an overturned appeal takes its decision's strike back
            decision_id, reversed_at = value
            updated = reverse(list(ledger.read()), decision_id, reversed_at)
            ledger.clear()
            for strike in updated:
                ledger.add(strike)
            yield from updated
            return
        prior = list(ledger.read())
        try:
            updated, suspension = update_account(account_id, prior, [value], [], self._policy)
        except Exception as error:  # this decision's strike is its dead letter; the ledger stands
            yield beam.pvalue.TaggedOutput(DEAD, dead_letter_for(value[1], error, "update_strikes"))
            return
        ledger.clear()
        for strike in updated:
            ledger.add(strike)
        live = [s.expires_at for s in updated if s.reversed_at is None]
        if live:
            expiry.set(Timestamp.from_utc_datetime(min(live)))
        yield from updated
        if suspension is not None:
            yield beam.pvalue.TaggedOutput("suspensions", suspension)

    @userstate.on_timer(EXPIRY)
    def drop_expired(self, fired=beam.DoFn.TimestampParam, ledger=beam.DoFn.StateParam(LEDGER),
                     expiry=beam.DoFn.TimerParam(EXPIRY)):  # fmt: skip
        now = fired.to_utc_datetime().replace(tzinfo=None)
        kept = [s for s in ledger.read() if s.expires_at.replace(tzinfo=None) > now and s.reversed_at is None]
        ledger.clear()
        for strike in kept:
            ledger.add(strike)
        if kept:
            expiry.set(Timestamp.from_utc_datetime(min(s.expires_at for s in kept)))


def _tagged_prior(strike: Strike) -> tuple[str, tuple[str, Strike]]:
    return strike.account_id, ("prior", strike)


def _tagged_earned(earned: tuple[Strike, Decision]) -> tuple[str, tuple[str, tuple[Strike, Decision]]]:
    return earned[0].account_id, ("new", earned)


def _tagged_reversal(keyed: tuple[str, tuple[str, object]]) -> tuple[str, tuple[str, tuple[str, object]]]:
    account_id, reversal = keyed
    return account_id, ("reversal", reversal)


class TrackStrikesInState(beam.PTransform):
    """Streaming form of `UpdateStrikeLedger`: {"prior": strikes, "decisions": decisions,
    optionally "reversals": (account_id, (decision_id, reversed_at))} -> (ledger rows of every
    account whose ledger changed, suspensions, dead letters)."""

    def __init__(self, policy: StrikePolicy):
        super().__init__()
        self._policy = policy

    def expand(self, inputs):
        new = inputs["decisions"] | "EarnStrikes" >> beam.FlatMap(_earned, policy=self._policy)
        tagged = [inputs["prior"] | "TagPrior" >> beam.Map(_tagged_prior), new | "TagNew" >> beam.Map(_tagged_earned)]
        if "reversals" in inputs:
            tagged.append(inputs["reversals"] | "TagReversals" >> beam.Map(_tagged_reversal))
        outputs = (
            tagged
            | "ByAccount" >> beam.Flatten()
            | "Update"
            >> beam.ParDo(_AccountLedgerInState(self._policy)).with_outputs("suspensions", DEAD, main="ledger")
        )
        return outputs.ledger, outputs.suspensions, outputs[DEAD]
