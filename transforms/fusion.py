"""Fusing an item's modality scores into its content score and its fused score.

A thin shell around `models.fusion`, which holds the rules (content first, context bounded)
and the fitted model. Modalities that abstained (`ModalityScore.abstained`, an input unlike
the model's training data) do not vote; their score stays on the row for audit.
"""

from __future__ import annotations

import dataclasses

from models.fusion import FALLBACK_METHOD, FALLBACK_VERSION, FusionModel, fuse
from schemas.records import ModalityScore

FUSION_METHOD = "logistic_bounded"


@dataclasses.dataclass(frozen=True)
class FusedScore:
    content_score: float | None
    score: float | None
    method: str
    version: str


def voting_probabilities(scores: tuple[ModalityScore, ...]) -> dict[str, float]:
    """Each modality's probability, for the modalities that did not abstain."""
    return {s.modality: s.score for s in scores if not s.abstained}


def fuse_scores(scores: tuple[ModalityScore, ...], model: FusionModel | None = None) -> FusedScore:
    """Fuses whatever modality scores an item has; missing and abstaining modalities do not vote."""
    fused = fuse(voting_probabilities(scores), model)
    if model is not None:
        return FusedScore(fused.content, fused.fused, FUSION_METHOD, model.version)
    return FusedScore(fused.content, fused.fused, FALLBACK_METHOD, FALLBACK_VERSION)
