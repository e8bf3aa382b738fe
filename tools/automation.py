"""Where each automated rule stands against reviewers: samples, agreement, lower bound, mode.

    python -m pipelines.automation --warehouse DIR|bq://PROJECT.DATASET [--policy FILE]
        [--since 2026-11-01] [--out automation.json]

Per rule of the policy with an `automation` section: the blind verdicts on its decisions
(`reviews` table), the share where the reviewer chose the rule's action, the 95% Wilson lower
bound of that share, the target, the mode the policy sets and the mode the evidence
recommends (`enforcement.automation`). The batch and streaming jobs read the same figures at
start-up and run a rule whose lower bound has fallen under its target in `sampled` mode.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path

from enforcement.automation import RuleAgreement
from enforcement.policy import load_policy
from pipelines.automation import read_agreement
from pipelines.options import StrictParser, add_flags
from warehouse.reader import open_reader

LOG = logging.getLogger(__name__)


def format_table(measured: list[RuleAgreement]) -> str:
    lines = [f"{'rule':<28} {'action':<12} {'mode':<8} {'samples':>7} {'agree':>6} {'lower':>6} {'target':>6}  "
             "recommended"]  # fmt: skip
    for m in measured:
        agreement = "-" if m.agreement is None else f"{m.agreement:.3f}"
        target = "-" if m.target_precision is None else f"{m.target_precision:.2f}"
        lines.append(
            f"{m.rule_id:<28} {m.action:<12} {m.mode:<8} {m.samples:>7} {agreement:>6} {m.lower_bound:>6.3f} "
            f"{target:>6}  {m.recommended_mode}  ({m.reason})"
        )
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m tools.automation", description=__doc__.split("\n\n")[0])
    add_flags(parser, "warehouse", "bigquery_endpoint", required=("warehouse",))
    add_flags(parser, "policy")  # the live policy
    parser.add_argument("--since", type=dt.date.fromisoformat, default=None, help="Verdicts from this day (UTC).")
    parser.add_argument("--out", default=None, help="Also write the figures as JSON here.")
    args = parser.parse_args(argv)
    try:
        policy = load_policy(args.policy)
    except (OSError, ValueError) as exc:
        parser.error(f"--policy: {exc}")
    try:
        open_reader(args.warehouse, args.bigquery_endpoint)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"--warehouse: {exc}")
    measured = read_agreement(args.warehouse, policy, args.bigquery_endpoint, args.since)
    print(format_table(measured))
    if args.out:
        document = {"policy": f"{policy.policy_id}@{policy.version}", "since": args.since,
                    "rules": [m.to_row() for m in measured]}  # fmt: skip
        Path(args.out).write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run())
