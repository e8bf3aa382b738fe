"""What a policy change would do, replayed on stored scores: no re-extraction, no models.

    python -m tools.simulate --warehouse DIR|bq://PROJECT.DATASET --candidate CANDIDATE.yaml [--policy LIVE.yaml]
        [--since 2026-11-01] [--out DIR] [--capacity 2000] [--shadow]

Each stored upload (its newest `media_scores` row: scores, abstentions, provenance, hash match
and the event's context as the policy read them) is decided under the baseline (the live
policy by default) and the candidate, in the warehouse's own SQL (`enforcement.simulation`),
and the two are compared: volume per action, category, country and surface; the items whose
decision changes; precision, recall and false-positive rate per action from the labels the
warehouse holds (`retraining_labels`: reviewers' verdicts and overturned appeals); accounts
whose suspension would change (strike points of the replayed decisions, against each policy's
threshold; the ledger's earlier strikes are not replayed); the review queue's load per day
(routed items plus the expected quality samples) against the reviewers' capacity; and the
expected cost under `policies/error_costs.yaml`. Writes OUT/simulation.json and
OUT/simulation.html (with charts). `--shadow` reads the candidate's decisions from a job run
with `--shadow_policy CANDIDATE.yaml` (`shadow_decisions`) beside the live ones, on real
traffic, instead of replaying.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import sys
from pathlib import Path
from typing import Any

from enforcement.policy import Policy, load_policy
from enforcement.policy_sections import RESTRICTIVE_ACTIONS
from enforcement.simulation import decision_sql, effective_actions, expected_quality_samples, sql_literal
from pipelines.options import StrictParser, add_flags
from tools.html_pages import figure, html_page, html_table, percent, png_uri
from training.thresholds import load_costs
from warehouse.reader import WarehouseReader, newest_rows, open_reader

CHANGED_ITEMS_LISTED = 1000
# What a person said each item was: the newest label (reviewers' verdicts, overturned appeals).
LABELS = f"SELECT content_id, label FROM ({newest_rows('retraining_labels', 'labelled_at')})"
POLICIES = ("baseline", "candidate")
# The reviewers' capacity is drawn as a line only up to this multiple of the busiest day's load:
# higher, it would flatten the bars to nothing, so the page says it in words instead.
CAPACITY_DRAWN_UP_TO = 1.5
CHANGED_ITEMS_SHOWN = 50
ACCOUNTS_SHOWN = 20
# The page's tables: what each column holds, under its heading.
VOLUME_TABLES = {
    "action": "Uploads per action",
    "category": "Uploads per category",
    "country": "Restrictive decisions per country",
    "surface": "Restrictive decisions per surface",
}
QUALITY_COLUMNS = {
    "policy": "policy",
    "action": "action",
    "items": "labelled items it acted on",
    "precision": "precision",
    "recall": "recall",
    "false_positive_rate": "false-positive rate (of real items)",
}
CHANGED_COLUMNS = {
    "content_id": "content id",
    "baseline_rule": "baseline rule",
    "baseline_action": "baseline action",
    "candidate_rule": "candidate rule",
    "candidate_action": "candidate action",
    "label": "label",
}


def _by_rule(rule_column: str, values: dict[str, Any]) -> str:
    """A SQL CASE mapping rule ids to values (NULL elsewhere)."""
    branches = " ".join(f"WHEN {sql_literal(rule)} THEN {sql_literal(value)}" for rule, value in values.items())
    return f"CASE {rule_column} {branches} END" if values else "NULL"


def _restrictive(column: str) -> str:
    return f"{column} IN ({', '.join(sql_literal(a) for a in RESTRICTIVE_ACTIONS)})"


def decided_sql(policies: dict[str, Policy], since: dt.date | None) -> str:
    """The CTE every figure reads: each stored upload once, decided under both policies, with
    its label where a person gave one."""
    where = f"uploaded_at >= TIMESTAMP '{since.isoformat()}'" if since else ""
    rules, derived = [], []
    for name, policy in policies.items():
        actions = effective_actions(policy)
        rules.append(f"{decision_sql(policy)} AS {name}_rule")
        derived += [
            f"{_by_rule(f'{name}_rule', {r: a for r, (a, _) in actions.items()})} AS {name}_action",
            f"{_by_rule(f'{name}_rule', {r: c for r, (_, c) in actions.items() if c})} AS {name}_category",
            f"{_by_rule(f'{name}_rule', expected_quality_samples(policy))} AS {name}_sample_rate",
        ]
    return (
        f"WITH latest AS ({newest_rows('media_scores', 'scored_at', where)}), labels AS ({LABELS}), "
        "ruled AS (SELECT l.content_id, l.account_id, l.media_type, COALESCE(l.surface, 'unknown') AS surface, "
        "COALESCE(l.country, 'unknown') AS country, CAST(l.uploaded_at AS DATE) AS day, labels.label, "
        f"{', '.join(rules)} FROM latest AS l LEFT JOIN labels ON labels.content_id = l.content_id), "
        f"decided AS (SELECT *, {', '.join(derived)} FROM ruled)"
    )


def shadow_sql(policies: dict[str, Policy], since: dt.date | None) -> str:
    """The same CTE from a shadow run: the live decisions against the candidate's recorded
    beside them in `shadow_decisions` (`--shadow_policy`), on the uploads both decided."""
    baseline, candidate = policies["baseline"], policies["candidate"]
    when = f" AND uploaded_at >= TIMESTAMP '{since.isoformat()}'" if since else ""
    live = (f"supersedes IS NULL AND policy_id = {sql_literal(baseline.policy_id)} AND action != 'suspend_account'"
            f"{when}")  # fmt: skip
    shadow = (f"policy_id = {sql_literal(candidate.policy_id)} AND policy_version = {sql_literal(candidate.version)}"
              f"{when}")  # fmt: skip
    rates = ", ".join(
        f"{_by_rule(f'{name}_rule', expected_quality_samples(policy))} AS {name}_sample_rate"
        for name, policy in policies.items()
    )
    return (
        f"WITH live AS ({newest_rows('enforcement_decisions', 'decided_at', live)}), "
        f"shadow AS ({newest_rows('shadow_decisions', 'decided_at', shadow)}), labels AS ({LABELS}), "
        "ruled AS (SELECT live.content_id, live.account_id, live.media_type, COALESCE(live.surface, 'unknown') AS "
        "surface, COALESCE(live.country, 'unknown') AS country, CAST(live.uploaded_at AS DATE) AS day, labels.label, "
        "live.rule_id AS baseline_rule, live.action AS baseline_action, live.category AS baseline_category, "
        "shadow.rule_id AS candidate_rule, shadow.action AS candidate_action, shadow.category AS candidate_category "
        "FROM live JOIN shadow ON shadow.content_id = live.content_id "
        "LEFT JOIN labels ON labels.content_id = live.content_id), "
        f"decided AS (SELECT *, {rates} FROM ruled)"
    )


def volumes(reader: WarehouseReader, base: str) -> dict[str, list[dict[str, Any]]]:
    """Decisions per action and per category, restrictive decisions per country and surface."""
    result = {}
    for dimension in ("action", "category"):
        rows = reader.rows(f"{base} SELECT value, SUM(b) AS baseline, SUM(c) AS candidate FROM ("
                     f"SELECT COALESCE(baseline_{dimension}, 'none') AS value, 1 AS b, 0 AS c FROM decided UNION ALL "
                     f"SELECT COALESCE(candidate_{dimension}, 'none'), 0, 1 FROM decided) GROUP BY 1 ORDER BY 1")  # fmt: skip
        result[dimension] = rows
    for dimension in ("country", "surface"):
        result[dimension] = reader.rows(
            f"{base} SELECT {dimension} AS value, "
            f"SUM(CASE WHEN {_restrictive('baseline_action')} THEN 1 ELSE 0 END) AS baseline, "
            f"SUM(CASE WHEN {_restrictive('candidate_action')} THEN 1 ELSE 0 END) AS candidate "
            "FROM decided GROUP BY 1 ORDER BY 1",
        )
    for rows in result.values():
        for row in rows:
            row["change"] = row["candidate"] - row["baseline"]
    return result


def changed_items(reader: WarehouseReader, base: str) -> tuple[int, list[dict[str, Any]]]:
    changed = ("baseline_action != candidate_action OR COALESCE(baseline_category, '') != "
               "COALESCE(candidate_category, '')")  # fmt: skip
    count = reader.rows(f"{base} SELECT COUNT(*) AS n FROM decided WHERE {changed}")[0]["n"]
    listed = reader.rows(f"{base} SELECT content_id, baseline_rule, baseline_action, candidate_rule, "
                   f"candidate_action, label FROM decided WHERE {changed} ORDER BY content_id "
                   f"LIMIT {CHANGED_ITEMS_LISTED}")  # fmt: skip
    return int(count), listed


def quality(reader: WarehouseReader, base: str) -> dict[str, Any]:
    """Per policy and action: precision, recall and false-positive rate on the labelled items."""
    rows = reader.rows(f"{base} SELECT label, baseline_action, candidate_action, COUNT(*) AS n FROM decided "
                 "WHERE label IN ('real', 'synthetic') GROUP BY 1, 2, 3")  # fmt: skip
    synthetic = sum(r["n"] for r in rows if r["label"] == "synthetic")
    real = sum(r["n"] for r in rows if r["label"] == "real")
    result: dict[str, Any] = {"labelled_items": synthetic + real, "synthetic": synthetic, "real": real}
    for name in POLICIES:
        tiers = {}
        for action in (*RESTRICTIVE_ACTIONS, "human_review", "any_restriction"):
            chosen = RESTRICTIVE_ACTIONS if action == "any_restriction" else (action,)
            hits = [r for r in rows if r[f"{name}_action"] in chosen]
            true_hits = sum(r["n"] for r in hits if r["label"] == "synthetic")
            false_hits = sum(r["n"] for r in hits if r["label"] == "real")
            tiers[action] = {
                "items": true_hits + false_hits,
                "precision": true_hits / (true_hits + false_hits) if true_hits + false_hits else None,
                "recall": true_hits / synthetic if synthetic else None,
                "false_positive_rate": false_hits / real if real else None,
            }
        result[name] = tiers
    return result


def expected_cost(quality_rows: dict[str, Any], costs_path: str) -> dict[str, Any]:
    """Cost per labelled item under each policy: the remove tier's errors (a real item removed,
    a synthetic one not removed) and the review tiers' (a real item sent to people, a synthetic
    one neither reviewed nor restricted), at the costs of `policies/error_costs.yaml`."""
    costs = load_costs(costs_path)
    labelled = quality_rows["labelled_items"]
    if not labelled:
        return {name: None for name in POLICIES}
    review = next((c for tier, c in costs.items() if tier.startswith("review")), None)
    result = {}
    for name in POLICIES:
        tiers = quality_rows[name]
        synthetic, real = quality_rows["synthetic"], quality_rows["real"]
        total = 0.0
        if "remove" in costs:
            removed = tiers["remove"]
            total += costs["remove"].cost_false_positive * (removed["false_positive_rate"] or 0) * real
            total += costs["remove"].cost_false_negative * (1 - (removed["recall"] or 0)) * synthetic
        if review is not None:
            reviewed, restricted = tiers["human_review"], tiers["any_restriction"]
            total += review.cost_false_positive * (reviewed["false_positive_rate"] or 0) * real
            caught = (reviewed["recall"] or 0) + (restricted["recall"] or 0)
            total += review.cost_false_negative * max(0.0, 1 - caught) * synthetic
        result[name] = total / labelled
    return result


def suspensions(reader: WarehouseReader, base: str, policies: dict[str, Policy]) -> dict[str, Any]:
    """Accounts whose replayed strike points reach each policy's suspension threshold."""
    points, thresholds = [], {}
    for name, policy in policies.items():
        strikes = policy.strikes
        weights = dict(strikes.weights) if strikes else {}
        thresholds[name] = strikes.suspend_at if strikes else None
        branches = " ".join(f"WHEN {sql_literal(a)} THEN {w}" for a, w in weights.items()) or "WHEN NULL THEN 0"
        points.append(f"SUM(CASE {name}_action {branches} ELSE 0 END) AS {name}_points")
    rows = reader.rows(f"{base} SELECT account_id, {', '.join(points)} FROM decided GROUP BY 1")
    suspended = {name: {r["account_id"] for r in rows if thresholds[name] is not None
                        and (r[f"{name}_points"] or 0) >= thresholds[name]} for name in POLICIES}  # fmt: skip
    return {
        "replayed_accounts": len(rows),
        "suspended": {name: len(accounts) for name, accounts in suspended.items()},
        "newly_suspended": sorted(suspended["candidate"] - suspended["baseline"])[:CHANGED_ITEMS_LISTED],
        "no_longer_suspended": sorted(suspended["baseline"] - suspended["candidate"])[:CHANGED_ITEMS_LISTED],
    }


def review_load(reader: WarehouseReader, base: str, capacity: float | None) -> dict[str, Any]:
    """Items reaching people per upload day under each policy: routed (human_review) plus the
    expected quality samples of enforced rules."""
    parts = [
        f"SUM(CASE WHEN {name}_action = 'human_review' THEN 1 ELSE 0 END) + SUM(COALESCE({name}_sample_rate, 0)) "
        f"AS {name}"
        for name in POLICIES
    ]
    days = reader.rows(f"{base} SELECT day, {', '.join(parts)} FROM decided GROUP BY 1 ORDER BY 1")
    for row in days:
        row["day"] = str(row["day"])
    over = {name: sum(1 for d in days if capacity and d[name] > capacity) for name in POLICIES}
    return {"capacity_per_day": capacity, "days": days, "days_over_capacity": over}


def simulate(reader: WarehouseReader, policies: dict[str, Policy], since: dt.date | None, costs: str,
             capacity: float | None, shadow: bool = False) -> dict[str, Any]:  # fmt: skip
    """Every figure of the comparison, as one JSON-ready document: replayed on stored scores, or
    (`shadow`) read from a shadow run's decisions beside the live ones."""
    base = shadow_sql(policies, since) if shadow else decided_sql(policies, since)
    items = reader.rows(f"{base} SELECT COUNT(*) AS n FROM decided")[0]["n"]
    count, listed = changed_items(reader, base)
    measured = quality(reader, base)
    return {
        "baseline": f"{policies['baseline'].policy_id}@{policies['baseline'].version}",
        "candidate": f"{policies['candidate'].policy_id}@{policies['candidate'].version}",
        "since": since.isoformat() if since else None,
        "source": "shadow_decisions beside the live decisions" if shadow else "media_scores replayed under both",
        "items": int(items),
        "volumes": volumes(reader, base),
        "changed_items": count,
        "changed": listed,
        "quality": measured,
        "expected_cost_per_labelled_item": expected_cost(measured, costs),
        "suspensions": suspensions(reader, base, policies),
        "review_load": review_load(reader, base, capacity),
    }


def _policy_bars(
    fig, ax, positions: list[float], rows: list[dict[str, Any]], result: dict[str, Any], title: str
) -> None:
    """One bar per policy at each position, side by side, with a legend under the plot, where it
    covers no bar."""
    width = 0.8 / len(POLICIES)
    for index, name in enumerate(POLICIES):
        ax.bar([x + (index + 0.5) * width - 0.4 for x in positions], [r[name] for r in rows], width,
               label=f"{name} ({result[name]})")  # fmt: skip
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)


def _decisions_chart(result: dict[str, Any]) -> str:
    """Uploads per action under each policy."""
    from matplotlib.ticker import MaxNLocator

    rows = result["volumes"]["action"]
    fig, ax = figure()
    _policy_bars(fig, ax, list(range(len(rows))), rows, result, "Decisions per action")
    ax.set_xticks(range(len(rows)), [r["value"] for r in rows])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="action", ylabel="uploads decided")
    return png_uri(fig)


def _load_chart(result: dict[str, Any]) -> tuple[str, str]:
    """Items reaching reviewers per upload day under each policy, and what the page says of the
    capacity: drawn as a line when it is near the load, in words when it would dwarf it."""
    import matplotlib.dates as mdates
    from matplotlib.ticker import MaxNLocator

    load = result["review_load"]
    days = [mdates.date2num(dt.date.fromisoformat(d["day"])) for d in load["days"]]
    peak = max(max(d[name] for name in POLICIES) for d in load["days"])
    capacity = load["capacity_per_day"]
    drawn = capacity is not None and capacity <= CAPACITY_DRAWN_UP_TO * peak
    fig, ax = figure()
    if drawn:
        ax.axhline(capacity, color="black", linestyle="--", linewidth=1, label=f"capacity ({capacity:,g} a day)")
    _policy_bars(fig, ax, days, load["days"], result, "Items reaching reviewers per upload day")
    ax.xaxis.set_major_locator(locator := mdates.AutoDateLocator(maxticks=12))
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
    if peak >= 1:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    first, last = load["days"][0]["day"], load["days"][-1]["day"]
    ax.set(xlabel=f"upload day (UTC), {first} to {last}", ylabel="items a day (routed + samples)")
    over = ", ".join(f"{name} {load['days_over_capacity'][name]}" for name in POLICIES)
    if capacity is None:
        note = "No reviewer capacity is set (--capacity or the policy's review.capacity_per_day)."
    elif drawn:
        note = (f"Reviewer capacity: {capacity:,g} items a day (the dashed line). Days over it, of "
                f"{len(days)} upload days: {over}.")  # fmt: skip
    else:
        note = (f"Reviewer capacity: {capacity:,g} items a day, not drawn: the busiest day's load "
                f"({peak:,.1f} items) is {peak / capacity:.2%} of it. Days over it, of {len(days)} upload days: "
                f"{over}.")  # fmt: skip
    return png_uri(fig), note


def _cost_sentence(result: dict[str, Any]) -> str:
    costs = result["expected_cost_per_labelled_item"]
    if any(costs[name] is None for name in POLICIES):
        return "Expected cost: not measured, no replayed upload has a label."
    change = costs["candidate"] - costs["baseline"]
    return (f"Expected cost per labelled item, in the units of the error costs file (--costs): baseline "
            f"{costs['baseline']:.3f}, candidate {costs['candidate']:.3f} ({change:+.3f}).")  # fmt: skip


def _accounts(accounts: list[str]) -> str:
    if not accounts:
        return "none"
    more = len(accounts) - ACCOUNTS_SHOWN
    return ", ".join(accounts[:ACCOUNTS_SHOWN]) + (f" and {more:,} more (simulation.json)" if more > 0 else "")


def _suspensions(result: dict[str, Any]) -> str:
    found = result["suspensions"]
    return (
        f"<p>{found['replayed_accounts']:,} accounts have replayed decisions. Accounts whose strike points reach "
        f"the policy's suspension threshold: baseline {found['suspended']['baseline']:,}, candidate "
        f"{found['suspended']['candidate']:,}.</p>"
        f"<p>Suspended under the candidate only: {html.escape(_accounts(found['newly_suspended']))}.</p>"
        f"<p>Suspended under the baseline only: {html.escape(_accounts(found['no_longer_suspended']))}.</p>"
    )


def _quality(result: dict[str, Any]) -> str:
    measured = result["quality"]
    if not measured["labelled_items"]:
        return "<p>No replayed upload has a label: precision, recall and false-positive rate are not measured.</p>"
    rows = [
        {"policy": name, "action": action, "items": m["items"], "precision": percent(m["precision"]),
         "recall": percent(m["recall"]), "false_positive_rate": percent(m["false_positive_rate"])}
        for name in POLICIES
        for action, m in measured[name].items()
    ]  # fmt: skip
    return (
        f"<p>Labelled items: {measured['labelled_items']:,} ({measured['synthetic']:,} synthetic, "
        f"{measured['real']:,} real). any_restriction is every restrictive action together.</p>"
        + html_table(rows, QUALITY_COLUMNS)
    )


def render_html(result: dict[str, Any]) -> str:
    """The comparison as a page: what changes, in sentences, charts and tables."""
    title = f"Policy simulation: {result['candidate']} against {result['baseline']}"
    volume_columns = {"baseline": f"baseline ({result['baseline']})", "candidate": f"candidate ({result['candidate']})",
                      "change": "change"}  # fmt: skip
    volume_tables = [
        f"<h3>{heading}</h3>"
        + html_table([{**r, "change": f"{r['change']:+,}"} for r in result["volumes"][dimension]],
                     {"value": dimension, **volume_columns})
        for dimension, heading in VOLUME_TABLES.items()
    ]  # fmt: skip
    items, changed = result["items"], result["changed_items"]
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Source: {html.escape(result['source'])}. {items:,} stored uploads"
        f"{' since ' + result['since'] if result['since'] else ''}; {changed:,} "
        f"({changed / items if items else 0:.1%}) would be decided differently.</p>",
        f"<p>{html.escape(_cost_sentence(result))}</p>",
        "<h2>Decisions</h2>",
        f'<img src="{_decisions_chart(result)}" alt="Decisions per action under each policy">',
        *volume_tables,
        "<h2>Review load</h2>",
    ]
    if result["review_load"]["days"]:
        chart, note = _load_chart(result)
        sections += [f'<img src="{chart}" alt="Items reaching reviewers per upload day">',
                     f"<p class='note'>{html.escape(note)}</p>"]  # fmt: skip
    else:
        sections.append("<p>No upload day to show.</p>")
    sections += [
        "<h2>Quality on labelled items</h2>", _quality(result),
        "<h2>Suspensions</h2>", _suspensions(result),
        f"<h2>Items decided differently (first {min(changed, CHANGED_ITEMS_SHOWN)} of {changed:,})</h2>",
        html_table([{**r, "label": r["label"] or "unlabelled"} for r in result["changed"][:CHANGED_ITEMS_SHOWN]],
                   CHANGED_COLUMNS),
    ]  # fmt: skip
    return html_page(title, sections)


def run(argv: list[str] | None = None) -> int:
    parser = StrictParser(prog="python -m tools.simulate", description=__doc__.split("\n\n")[0])
    add_flags(parser, "warehouse", "bigquery_endpoint", "policy", required=("warehouse",))  # --policy: the live one
    parser.add_argument("--candidate", required=True, help="The candidate policy YAML, compared with --policy.")
    parser.add_argument("--since", type=dt.date.fromisoformat, default=None, help="Uploads from this day (UTC).")
    parser.add_argument("--costs", default="policies/error_costs.yaml", help="Error costs per tier.")
    parser.add_argument("--capacity", type=float, default=None, help="Reviewer decisions a day (default: the "
                        "candidate policy's review.capacity_per_day).")  # fmt: skip
    parser.add_argument("--shadow", action="store_true", help="Compare the live decisions with the candidate's "
                        "recorded beside them by a --shadow_policy run, instead of replaying stored scores.")  # fmt: skip
    parser.add_argument("--out", default="simulation", help="Directory for simulation.json and simulation.html.")
    args = parser.parse_args(argv)
    policies = {}
    for name, flag, path in (("baseline", "policy", args.policy), ("candidate", "candidate", args.candidate)):
        try:
            policies[name] = load_policy(path)
        except (OSError, ValueError) as exc:
            parser.error(f"--{flag}: {exc}")
    try:
        reader = open_reader(args.warehouse, args.bigquery_endpoint)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"--warehouse: {exc}")
    capacity = args.capacity if args.capacity is not None else policies["candidate"].review.capacity_per_day
    result = simulate(reader, policies, args.since, args.costs, capacity, args.shadow)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "simulation.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "simulation.html").write_text(render_html(result))
    print(f"{result['items']} uploads replayed: {result['changed_items']} decided differently under "
          f"{result['candidate']} than under {result['baseline']}")  # fmt: skip
    for row in result["volumes"]["action"]:
        print(f"  {row['value']:<13} {row['baseline']:>8} -> {row['candidate']:>8} ({row['change']:+d})")
    print(f"report: {out / 'simulation.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
