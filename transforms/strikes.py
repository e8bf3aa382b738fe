"""Account strikes as Beam transforms: each account's ledger updated by key
(`enforcement.strikes` holds the rules), suspensions as a second output.
"""

from __future__ import annotations

import apache_beam as beam

from enforcement.policy import StrikePolicy
from enforcement.strikes import Strike, strike_for, update_account
from schemas.records import Decision
from transforms.dead_letter import DEAD, Guarded


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
