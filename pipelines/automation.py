"""The jobs' automation gate: where each automated rule stands against reviewers.

Per rule of the policy with an `automation` section: the blind verdicts on its decisions
(`reviews` table), the share where the reviewer chose the rule's action, the 95% Wilson lower
bound of that share, the target, the mode the policy sets and the mode the evidence
recommends (`enforcement.automation`). The batch and streaming jobs read the same figures at
start-up and run a rule whose lower bound has fallen under its target in `sampled` mode;
`python -m tools.automation` prints the same figures.
"""

from __future__ import annotations

import datetime as dt
import logging

from enforcement.automation import RuleAgreement, downgrades, measure_agreement
from enforcement.policy import Policy
from warehouse.reader import open_reader

LOG = logging.getLogger(__name__)


def read_agreement(warehouse: str, policy: Policy, bigquery_endpoint: str | None = None,
                   since: dt.date | None = None) -> list[RuleAgreement]:  # fmt: skip
    """The policy's automated rules measured on the warehouse's blind verdicts (none yet: a
    warehouse without a catalog or a `reviews` table has no verdicts)."""
    try:
        reader = open_reader(warehouse, bigquery_endpoint)
    except FileNotFoundError:
        return measure_agreement(policy, [])
    where = f"policy_id = '{policy.policy_id}' AND blind"
    if since is not None:
        where += f" AND reviewed_at >= TIMESTAMP '{since.isoformat()}'"
    rows = reader.query(f"SELECT rule_id, blind, machine_action, agrees FROM reviews WHERE {where}").to_pylist()
    return measure_agreement(policy, rows)


def gate_automation(policy: Policy, sink, warehouse: str, bigquery_endpoint: str | None = None) -> Policy:
    """The policy a run decides with: each enforced rule whose measured agreement has fallen
    under its target runs in `sampled` mode, and the downgrade is logged with its evidence.
    Read at launch, before a truncating run empties the tables."""
    if not sink.has_rows("reviews"):
        return policy
    demoted = downgrades(read_agreement(warehouse, policy, bigquery_endpoint))
    for rule_id, evidence in demoted.items():
        LOG.warning("automation: rule %s downgraded from enforce to sampled for this run (%s); its items go to "
                    "review instead of %s", rule_id, evidence.reason, evidence.action)  # fmt: skip
        print(f"automation: {rule_id} runs sampled, not enforce: {evidence.reason}")
    return policy.with_modes({rule_id: "sampled" for rule_id in demoted}) if demoted else policy
