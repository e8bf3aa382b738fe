"""The enforcement policy as Beam transforms: decide per item (`enforcement.policy`), fan each
decision out as one event per downstream target (`enforcement.events`).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from enforcement.events import enforcement_events
from enforcement.policy import Policy, decide
from enforcement.policy_sections import QUEUE_KINDS
from enforcement.review import review_item
from schemas.records import Decision, ScoredMedia
from schemas.vocabulary import ACTIONS
from transforms.dead_letter import DEAD, Guarded

REVIEW = "review"


class _DecideDoFn(beam.DoFn):
    def __init__(self, policy: Policy):
        self._policy = policy
        self._by_action = {a: Metrics.counter("decisions", a) for a in ACTIONS}
        self._queued = {kind: Metrics.counter("review_queue", kind) for kind in QUEUE_KINDS}

    def process(self, item: ScoredMedia):
        decision = decide(item, self._policy)
        queued = review_item(item, decision, self._policy)
        self._by_action[decision.action].inc()
        yield decision
        if queued is not None:
            self._queued[queued.queue].inc()
            yield beam.pvalue.TaggedOutput(REVIEW, queued)


class ApplyPolicy(beam.PTransform):
    """ScoredMedia -> Decision, one per item, under one policy version, and the review queue's
    rows for the decisions that reach people (`enforcement.review`).

    Returns `(decisions, review_items, dead_letters)`: an item the policy cannot decide is that
    item's dead letter (step `decide`), not the job's failure.
    """

    def __init__(self, policy: Policy, step: str = "decide"):
        super().__init__()
        self._policy, self._step = policy, step

    def expand(self, scored):
        outputs = scored | "Decide" >> beam.ParDo(Guarded(_DecideDoFn(self._policy), self._step)).with_outputs(
            DEAD, REVIEW, main="decisions"
        )
        return outputs.decisions, outputs[REVIEW], outputs[DEAD]


class _EventsByTarget(beam.DoFn):
    def process(self, decision: Decision):
        for event in enforcement_events(decision):
            yield beam.pvalue.TaggedOutput(event.target, event)


class FanOutEnforcement(beam.PTransform):
    """Decision -> one EnforcementEvent per downstream target, as a tagged output per target.

    Returns `(events, dead_letters)`, events a dict target -> PCollection: locally every target
    lands in the `enforcement_events` table, in production each target is its own topic.
    """

    def __init__(self, policy: Policy):
        super().__init__()
        self._targets = sorted({t for names in policy.targets.values() for t in names})

    def expand(self, decisions):
        outputs = decisions | "RouteByTarget" >> beam.ParDo(
            Guarded(_EventsByTarget(), "fan_out_enforcement")
        ).with_outputs(*self._targets, DEAD)
        return {target: outputs[target] for target in self._targets}, outputs[DEAD]
