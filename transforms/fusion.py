"""Fusing calibrated per-modality probabilities into one score per item.

With a trained fusion model in the model directory (`models/fusion.py`: logistic regression
over calibrated logits, presence indicators and provenance), that model decides and the
rows say `fusion_method = "logistic"` with its version. Without one, the fallback is
method `logit_mean/1`: the weighted mean of the present modalities' logits, turned back
into a probability. Missing modalities abstain (they are left out, not scored as zero),
and metadata weighs half, since it is context rather than evidence from the pixels or the
waveform. An item with no score at all has no fused score.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from models.fusion import FusionModel, logit
from schemas.records import ModalityScore

FUSION_METHOD = "logit_mean"
FUSION_VERSION = "1"
MODALITY_WEIGHTS = {"visual": 1.0, "audio": 1.0, "metadata": 0.5}


@dataclasses.dataclass(frozen=True)
class FusedScore:
    score: float | None
    method: str
    version: str


def fuse_scores(
    scores: tuple[ModalityScore, ...], metadata_vector: np.ndarray | None = None, model: FusionModel | None = None
) -> FusedScore:
    """Fuses whatever modality scores an item has; modalities without a score abstain."""
    if model is not None:
        probabilities = {s.modality: s.score for s in scores}
        return FusedScore(model.predict(probabilities, metadata_vector), "logistic", model.version)
    weighted = [(MODALITY_WEIGHTS.get(s.modality, 1.0), logit(s.score)) for s in scores]
    total_weight = sum(w for w, _ in weighted)
    if total_weight == 0:
        return FusedScore(None, FUSION_METHOD, FUSION_VERSION)
    mean_logit = sum(w * z for w, z in weighted) / total_weight
    return FusedScore(1.0 / (1.0 + math.exp(-mean_logit)), FUSION_METHOD, FUSION_VERSION)
