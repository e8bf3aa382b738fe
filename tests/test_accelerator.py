"""On Dataflow, only inference needs GPU workers: the accelerator hint sits on RunInference alone."""

from __future__ import annotations

import apache_beam as beam


def test_only_the_inference_steps_carry_the_accelerator_hint():
    from models.registry import SERVED_MODEL_DIR, resolve_model_set
    from transforms.inference import ScoreMedia

    model_set = resolve_model_set(str(SERVED_MODEL_DIR))
    p = beam.Pipeline()
    _ = p | beam.Create([]) | ScoreMedia(model_set.models, accelerator="type:nvidia-tesla-t4;count:1")
    proto = p.to_runner_api()
    hinted = set()
    for transform in proto.components.transforms.values():
        hints = (
            proto.components.environments[transform.environment_id].resource_hints if transform.environment_id else {}
        )
        if any(b"nvidia-tesla-t4" in value for value in hints.values()):
            hinted.add(transform.unique_name.split("/")[1] if "/" in transform.unique_name else transform.unique_name)
    assert hinted == {"ScoreVisual", "ScoreAudio", "ScoreMetadata"}
    names = {t.unique_name for t in proto.components.transforms.values()
             if t.environment_id and any(b"nvidia" in v for v in proto.components.environments[t.environment_id].resource_hints.values())}  # fmt: skip
    assert names and all("/RunInference" in name for name in names)  # decoding and fusion stay on CPU workers
