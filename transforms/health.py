"""Signal health as Beam metrics, for a streaming job's dashboards between weekly reports.

Every scored item adds to a decile counter of each of its scores (`signal_health`,
`<score>_decile_<0-9>`, the same scores `tools.signal_health` judges) and to a
distribution of it in thousandths; every dead letter to a counter of its reason
(`dead_letter_<reason>`). A monitoring system reads the counters' rates per window.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas.records import DeadLetter, ScoredMedia

NAMESPACE = "signal_health"


def item_scores(item: ScoredMedia) -> dict[str, float]:
    """The scores signal health follows, by `media_scores` column name."""
    scores = {f"{s.modality}_score": s.score for s in item.scores}
    for name, value in (("content_score", item.content_score), ("fused_score", item.fused_score)):
        if value is not None:
            scores[name] = value
    return scores


class _ScoreMetrics(beam.DoFn):
    def process(self, item: ScoredMedia):
        for name, value in item_scores(item).items():
            Metrics.counter(NAMESPACE, f"{name}_decile_{min(int(value * 10), 9)}").inc()
            Metrics.distribution(NAMESPACE, name).update(round(value * 1000))
        return ()


class _DeadLetterMetrics(beam.DoFn):
    def process(self, letter: DeadLetter):
        Metrics.counter(NAMESPACE, f"dead_letter_{letter.reason}").inc()
        return ()


class ExportHealthMetrics(beam.PTransform):
    """{"scores": ScoredMedia, "dead_letters": DeadLetter} -> nothing: the metrics above."""

    def expand(self, inputs):
        inputs["scores"] | "ScoreMetrics" >> beam.ParDo(_ScoreMetrics())
        inputs["dead_letters"] | "DeadLetterMetrics" >> beam.ParDo(_DeadLetterMetrics())
        return beam.pvalue.PDone(inputs["scores"].pipeline)
