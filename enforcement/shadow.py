"""Shadow scoring: a challenger model set scores live traffic beside the served one and the
live policy says what it would have done with those scores; nothing acts on them. The rows
(`shadow_scores`) are what the promotion gate reads to measure agreement and the score shift
on real traffic before a release serves (`training.release`). No Beam."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

from schemas.records import ScoredMedia
from schemas.version import PIPELINE_VERSION

if TYPE_CHECKING:
    from enforcement.policy import Policy


def versions_text(versions: dict[str, str]) -> str:
    """`audio=V1,fusion=V2,...`: a model set's versions as one comparable string."""
    return ",".join(f"{name}={version}" for name, version in sorted(versions.items()))


@dataclasses.dataclass(frozen=True)
class ShadowScore:
    """One row of `shadow_scores`: the challenger's scores of an upload and the action the
    live policy would have taken on them."""

    scored: ScoredMedia
    model_versions: str  # versions_text of the challenger
    action: str
    rule_id: str

    def to_row(self) -> dict[str, Any]:
        scored = self.scored

        def score(modality: str) -> float | None:
            vote = scored.vote_for(modality)
            return None if vote is None else vote.score

        return {
            "content_id": scored.event.content_id,
            "uploaded_at": scored.event.uploaded_at,
            "scored_at": scored.scored_at,
            "model_versions": self.model_versions,
            "visual_score": score("visual"),
            "audio_score": score("audio"),
            "metadata_score": score("metadata"),
            "content_score": scored.content_score,
            "fused_score": scored.fused_score,
            "action": self.action,
            "rule_id": self.rule_id,
            "pipeline_version": PIPELINE_VERSION,
        }


def shadow_score(scored: ScoredMedia, policy: Policy, model_versions: str) -> ShadowScore:
    """The challenger's scores of one upload with what `policy` would do with them."""
    from enforcement.policy import decide

    decision = decide(scored, policy)
    return ShadowScore(scored, model_versions, decision.action, decision.rule_id)


def shadow_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Agreement and score shift from uploads scored by both (`shadow_action`, `live_action`,
    `shadow_content`, `live_content` per row): what the gate's shadow criteria judge."""
    shifts = [r["shadow_content"] - r["live_content"] for r in rows
              if r["shadow_content"] is not None and r["live_content"] is not None]  # fmt: skip
    return {
        "items": len(rows),
        "agreement": sum(r["shadow_action"] == r["live_action"] for r in rows) / len(rows) if rows else None,
        "mean_score_shift": sum(shifts) / len(shifts) if shifts else None,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(),
    }
