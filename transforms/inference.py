"""Scoring: one RunInference per modality, keyed by content_id, joined back per item."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference

from models.examples import model_inputs
from models.fusion import FusionModel
from models.handlers import ModelAnswer, SavedModelSignatureHandler
from models.registry import DeployedModel
from schemas.records import MediaFeatures, MediaInfo, ModalityScore, ScoredMedia, UploadEvent, utc_now
from schemas.vocabulary import MODALITIES
from transforms.dead_letter import FlatMapOrDeadLetter, dead_letter_from_failure
from transforms.fusion import fuse_scores


def keyed_inputs(features: MediaFeatures, modality: str) -> Iterable[tuple[str, dict]]:
    inputs = model_inputs(features, modality)
    if inputs is not None:
        yield features.content_id, inputs


def to_modality_score(keyed: tuple[str, PredictionResult], model: DeployedModel) -> tuple[str, ModalityScore]:
    content_id, result = keyed
    answer: ModelAnswer = result.inference
    domain = answer.domain
    if domain is not None and domain.abstained:
        Metrics.counter("inference", f"{model.modality}_abstained").inc()
    return content_id, ModalityScore(
        model.modality,
        answer.probability,
        model.name,
        model.version,
        abstained=bool(domain and domain.abstained),
        abstain_reason=domain.reason if domain else None,
        domain_distance=domain.distance if domain else None,
    )


def failed_batch_dead_letters(failure, step: str):
    """A failed inference batch becomes one dead-letter row per item in it."""
    batch, error = failure
    for element in batch:
        yield dead_letter_from_failure((element, error), step, reason="inference_failed")


class ScoreModality(beam.PTransform):
    """MediaFeatures -> (content_id, ModalityScore) for one modality's deployed model.

    Returns `(scores, dead_letters)`; items without the modality are not sent to the model.
    """

    def __init__(self, model: DeployedModel, min_batch_size: int, max_batch_size: int):
        super().__init__()
        self._model = model
        self._handler = SavedModelSignatureHandler(
            model.path, model.modality, min_batch_size=min_batch_size, max_batch_size=max_batch_size
        )

    def expand(self, features):
        modality = self._model.modality
        scores, errors = (
            features
            | "ToModelInputs" >> beam.FlatMap(keyed_inputs, modality=modality)
            | "RunInference" >> RunInference(KeyedModelHandler(self._handler)).with_exception_handling()
        )
        dead = errors.failed_inferences | "FailedToDeadLetter" >> beam.FlatMap(
            failed_batch_dead_letters, step=f"inference_{modality}"
        )
        return scores | "ToScores" >> beam.Map(to_modality_score, model=self._model), dead


def assemble_scores(
    content_id: str, grouped: Mapping[str, list], deployed: tuple[str, ...], fusion: FusionModel | None = None
) -> Iterable[ScoredMedia]:
    """Joins an item's features with its modality scores and fuses them.

    An item is scored only when every modality it carries that has a deployed model came
    back with a score; otherwise its failure is already in the dead letter and emitting a
    partial score here would hide it.
    """
    (facts,) = grouped["features"]
    scores = []
    for modality in facts.modalities:
        found = grouped.get(modality, [])
        if modality in deployed and not found:
            Metrics.counter("inference", f"missing_{modality}_score").inc()
            return
        scores.extend(found[:1])
    fused = fuse_scores(tuple(scores), fusion)
    yield ScoredMedia(
        event=facts.event,
        sha256=facts.sha256,
        info=facts.info,
        modalities_present=facts.modalities,
        scores=tuple(scores),
        fused_score=fused.score,
        fusion_method=fused.method,
        fusion_version=fused.version,
        scored_at=utc_now(),
        hash_match=facts.hash_match,
        hash_distance=facts.hash_distance,
        content_score=fused.content_score,
    )


@dataclasses.dataclass(frozen=True)
class ItemFacts:
    """What the score join needs of an item: not its tensors, which stay out of the shuffle."""

    event: UploadEvent
    sha256: str
    info: MediaInfo
    modalities: tuple[str, ...]
    hash_match: str | None = None
    hash_distance: int | None = None


def _keyed_facts(features: MediaFeatures) -> tuple[str, ItemFacts]:
    facts = ItemFacts(
        features.event,
        features.sha256,
        features.info,
        features.modalities(),
        features.hash_match,
        features.hash_distance,
    )
    return features.content_id, facts


def _assemble(keyed, deployed: tuple[str, ...], fusion: FusionModel | None):
    content_id, grouped = keyed
    yield from assemble_scores(content_id, grouped, deployed, fusion)


class ScoreMedia(beam.PTransform):
    """MediaFeatures -> ScoredMedia: every modality through its model, then fused.

    Returns `(scored, dead_letters)`. With no models deployed every item is still emitted,
    with no scores and no fused score (a features-only run, used to build training data).
    """

    def __init__(
        self,
        models: Mapping[str, DeployedModel],
        min_batch_size: int = 1,
        max_batch_size: int = 32,
        fusion: FusionModel | None = None,
    ):
        super().__init__()
        self._models = dict(models)
        self._fusion = fusion
        self._batch = (min_batch_size, max_batch_size)

    def expand(self, features):
        grouped_inputs = {"features": features | "KeyFacts" >> beam.Map(_keyed_facts)}
        dead_letters = []
        for modality in MODALITIES:
            if modality not in self._models:
                continue
            scores, dead = features | f"Score{modality.capitalize()}" >> ScoreModality(
                self._models[modality], *self._batch
            )
            grouped_inputs[modality] = scores
            dead_letters.append(dead)
        scored = grouped_inputs | "JoinScores" >> beam.CoGroupByKey()
        scored, unfused = scored | "FuseScores" >> FlatMapOrDeadLetter(
            _assemble, "fuse_scores", deployed=tuple(self._models), fusion=self._fusion
        )
        dead_letters.append(unfused)
        dead = dead_letters | "MergeInferenceFailures" >> beam.Flatten(pipeline=features.pipeline)
        return scored, dead
