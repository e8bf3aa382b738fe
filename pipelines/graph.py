"""The detection graph, shared by every job: upload events in, named outputs back, no I/O.

    detected = detect(events, Detection(policy, model_set, limits, hash_bank))
    detected.features / .scores / .decisions / .review_items / .events (per target) / .statements
        / .dead_letters / .shadow_decisions (with a shadow policy) / .shadow_scores (with a
        challenger scoring in shadow)

`detect` reads nothing and writes nothing: the batch job puts a manifest in front of it and the
embedded warehouse (or BigQuery) behind it; a streaming job puts Pub/Sub in front. Every step
that can fail returns its dead letters, and `dead_letters` gathers them all, so one bad row is
that row's dead letter and never the job's failure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping

import apache_beam as beam

from enforcement.policy import Policy
from enforcement.shadow import shadow_score, versions_text
from models.registry import ModelSet
from transforms.dead_letter import MapOrDeadLetter
from transforms.features import ExtractFeatures
from transforms.fetch import FetchMedia
from transforms.hashbank import BankRefresh, HashBank, MatchHashBank
from transforms.inference import ScoreMedia
from transforms.limits import MediaLimits
from transforms.policy import ApplyPolicy, FanOutEnforcement
from transforms.statements import BuildStatements


@dataclasses.dataclass(frozen=True)
class Detection:
    """What the graph decides with: the run's side inputs, fixed for the run."""

    policy: Policy
    model_set: ModelSet
    limits: MediaLimits
    hash_bank: HashBank | None = None
    min_batch_size: int = 1
    max_batch_size: int = 32
    # A Beam accelerator resource hint for the inference steps only, e.g.
    # "type:nvidia-tesla-t4;count:1;install-nvidia-driver" (Dataflow right fitting).
    accelerator: str | None = None
    # The streaming job's graph: joins that wait in keyed state instead of grouping the whole
    # input (a batch CoGroupByKey in the global window cannot fire on an unbounded input).
    streaming: bool = False
    # modality -> seconds between looks for a newer model version beside the served one (the
    # streaming job's model refresh); a modality absent here serves its launch version throughout.
    model_refresh_s: Mapping[str, float] = dataclasses.field(default_factory=dict)
    # A candidate policy run beside the live one on the same scores: its decisions are
    # recorded, never fanned out, queued or struck.
    shadow_policy: Policy | None = None
    # The streaming job's bank of confirmed violations, read again from its warehouse while it
    # runs (new entries match within `every_s`); batch matches the bank as of its launch.
    bank_refresh: BankRefresh | None = None
    # Media of accounts suspended under the policy, labelled `suspended:<account>:<decision>`:
    # a match from another account is a possible ban evasion, for review.
    suspended_media: HashBank | None = None
    # A challenger scoring beside the served models (--shadow_model_dir, or the registry's release
    # in shadow): its scores and what the live policy would have done with them go to
    # `shadow_scores`, acting on nothing; with `shadow_until`, only uploads made before it.
    shadow_models: ModelSet | None = None
    shadow_until: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Detected:
    """The graph's named outputs (PCollections)."""

    features: beam.PCollection  # MediaFeatures
    scores: beam.PCollection  # ScoredMedia
    decisions: beam.PCollection  # Decision
    review_items: beam.PCollection  # ReviewItem: the decisions that reach people (enforcement/review.py)
    events: dict[str, beam.PCollection]  # target -> EnforcementEvent
    statements: beam.PCollection  # StatementOfReasons
    dead_letters: list[beam.PCollection]  # DeadLetter, one PCollection per step
    shadow_decisions: beam.PCollection | None = None  # Decision under `Detection.shadow_policy`
    shadow_scores: beam.PCollection | None = None  # ShadowScore of `Detection.shadow_models`


def extract(events: beam.PCollection, detection: Detection) -> tuple[beam.PCollection, list[beam.PCollection]]:
    """UploadEvent -> MediaFeatures, and the dead letters of fetching and decoding the media."""
    blobs, unfetched = events | "FetchMedia" >> FetchMedia(detection.limits)
    features, unextracted = blobs | "ExtractFeatures" >> ExtractFeatures(detection.limits)
    return features, [unfetched, unextracted]


def detect(events: beam.PCollection, detection: Detection) -> Detected:
    """UploadEvent -> features, scores, decisions, events per target, statements, dead letters."""
    features, failures = extract(events, detection)
    if any(bank is not None for bank in (detection.hash_bank, detection.bank_refresh, detection.suspended_media)):
        features, unmatched = features | "MatchHashBank" >> MatchHashBank(
            detection.hash_bank, detection.bank_refresh, detection.suspended_media
        )
        failures.append(unmatched)
    scores, unscored = features | "ScoreMedia" >> ScoreMedia(
        detection.model_set.models,
        detection.min_batch_size,
        detection.max_batch_size,
        fusion=detection.model_set.fusion,
        accelerator=detection.accelerator,
        streaming=detection.streaming,
        refresh_s=detection.model_refresh_s,
    )
    decisions, review_items, undecided = scores | "ApplyPolicy" >> ApplyPolicy(detection.policy)
    by_target, unrouted = decisions | "FanOutEnforcement" >> FanOutEnforcement(detection.policy)
    statements, unstated = decisions | "BuildStatements" >> BuildStatements(detection.policy.categories)
    failures += [unscored, undecided, unrouted, unstated]
    shadow = shadow_scores = None
    if detection.shadow_policy is not None:
        shadow, _, unshadowed = scores | "ApplyShadowPolicy" >> ApplyPolicy(detection.shadow_policy, "decide_shadow")
        failures.append(unshadowed)
    if detection.shadow_models is not None:
        shadow_scores, unshadowed = features | "ShadowScoring" >> ShadowScoring(detection)
        failures.append(unshadowed)
    return Detected(features, scores, decisions, review_items, by_target, statements, failures, shadow, shadow_scores)


_AFTER_SHADOW = beam.metrics.Metrics.counter("shadow_scoring", "uploads_after_the_shadow_period")


def uploaded_before(features, until: dt.datetime) -> bool:
    """Whether an upload falls in the shadow period (the live path scores it either way)."""
    if features.event.uploaded_at < until:
        return True
    _AFTER_SHADOW.inc()
    return False


class ShadowScoring(beam.PTransform):
    """MediaFeatures -> (ShadowScore, dead letters): the challenger's models (`Detection.
    shadow_models`) score every upload and the live policy says what it would do with it."""

    def __init__(self, detection: Detection):
        super().__init__()
        self._detection = detection

    def expand(self, features):
        detection, models = self._detection, self._detection.shadow_models
        if detection.shadow_until is not None:
            features = features | "InShadowPeriod" >> beam.Filter(uploaded_before, detection.shadow_until)
        scored, unscored = features | "ScoreMedia" >> ScoreMedia(
            models.models, detection.min_batch_size, detection.max_batch_size, fusion=models.fusion,
            accelerator=detection.accelerator, streaming=detection.streaming,
        )  # fmt: skip
        versions = versions_text(models.versions())
        rows, undecided = scored | "WouldDecide" >> MapOrDeadLetter(
            shadow_score, "shadow_scoring", policy=detection.policy, model_versions=versions
        )
        return rows, (unscored, undecided) | "ShadowFailures" >> beam.Flatten()
