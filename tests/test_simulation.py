"""The policy as SQL decides what `decide` decides, row for row, NULLs and modes included."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from enforcement.policy import decide, load_policy, parse_policy
from enforcement.simulation import decision_sql, effective_actions
from schemas import arrow_schema
from schemas.records import AccountContext, MediaInfo, ModalityScore, Notice, ScoredMedia, UploadEvent
from schemas.vocabulary import AI_SOURCE_TYPES

POLICY = load_policy("policies/synthetic_media_v1.yaml")
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _maybe(rng, value, absent=0.25):
    return None if rng.random() < absent else value


def random_items(count: int, seed: int = 0) -> list[ScoredMedia]:
    """Scored items over every condition's inputs, with every optional field sometimes absent."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        account = _maybe(rng, AccountContext(high_profile=_maybe(rng, bool(rng.random() < 0.2)),
                                             verified=_maybe(rng, bool(rng.random() < 0.5)),
                                             prior_strikes=_maybe(rng, int(rng.integers(0, 4)))))  # fmt: skip
        notice = Notice(str(rng.choice(["user_report", "trusted_flagger"])), T0) if rng.random() < 0.2 else None
        event = UploadEvent(f"c{i}", f"m/{i}", f"a{i % 7}", T0, _maybe(rng, "video"),
                            _maybe(rng, str(rng.choice(["feed", "ads", "messaging"]))),
                            _maybe(rng, str(rng.choice(["DE", "FR", "US"]))), _maybe(rng, bool(rng.random() < 0.2)),
                            account, notice)  # fmt: skip
        media_type = str(rng.choice(["video", "image", "audio"]))
        source = _maybe(rng, str(rng.choice([*sorted(AI_SOURCE_TYPES), "digitalCapture"])), absent=0.7)
        info = MediaInfo(media_type, "mp4", digital_source_type=source)
        scores = tuple(
            ModalityScore(
                m,
                float(rng.choice([rng.random(), 0.99, 0.992, 0.8635, 0.8499, 0.9])),
                "m",
                "v1",
                abstained=bool(rng.random() < 0.15),
            )
            for m in ("visual", "audio", "metadata")
            if rng.random() < 0.7
        )
        voted = [s.score for s in scores if s.modality != "metadata" and not s.abstained]
        content = max(voted) if voted else None
        fused = _maybe(rng, float(rng.random()), absent=0.1) if scores else None
        items.append(ScoredMedia(event, "0" * 64, info, tuple(s.modality for s in scores), scores, fused, "f", "v",
                                 T0, hash_match=_maybe(rng, "case-1", absent=0.9), content_score=content,
                                 evasion_match="suspended:gone:d1" if i % 9 == 4 else None))  # fmt: skip
    return items


def sql_rules(items: list[ScoredMedia], policy) -> list[str]:
    rows = [item.to_row() for item in items]
    table = pa.Table.from_pylist(rows, schema=arrow_schema("media_scores"))
    with duckdb.connect() as con:
        con.register("media_scores", table)
        return [
            r for (r,) in con.sql(f"select {decision_sql(policy)} from media_scores order by content_id").fetchall()
        ]


def _variant(policy, modes: dict[str, str]):
    return policy.with_modes(modes)


@pytest.mark.parametrize(
    "modes",
    [{}, {"remove-content-certain": "shadow"}, {"remove-content-certain": "sampled", "declared-ai-label": "shadow"}],
)
def test_the_sql_decides_as_decide_does_on_every_kind_of_item(modes):
    policy = _variant(POLICY, modes)
    items = sorted(random_items(3000), key=lambda item: item.event.content_id)
    expected = [decide(item, policy).rule_id for item in items]
    assert sql_rules(items, policy) == expected
    assert len(set(expected)) >= 6  # the items reach most rules, not only the default
    actions = effective_actions(policy)
    for item, rule_id in zip(items[:500], expected):
        assert actions[rule_id][0] == decide(item, policy).action


def test_every_condition_has_sql():
    from enforcement.policy import CONDITIONS
    from enforcement.simulation import CONDITION_SQL

    assert set(CONDITION_SQL) == set(CONDITIONS)


def test_each_condition_alone_matches_its_python_test():
    from enforcement.policy import CONDITIONS

    items = sorted(random_items(1500, seed=3), key=lambda item: item.event.content_id)
    values = {"min_fused_score": 0.5, "max_fused_score": 0.5, "has_score": True, "min_content_score": 0.8,
              "max_content_score": 0.8, "has_content_evidence": False, "declared_ai": True, "provenance_ai": True,
              "hash_match": True, "evasion_match": True, "min_visual_score": 0.9, "min_audio_score": 0.5, "min_metadata_score": 0.5,
              "prior_strikes_at_least": 2, "high_profile": True, "verified": False, "media_type_in": ["image"],
              "surface_in": ["ads", "feed"], "country_in": ["DE"], "detection_method_in": ["user_report"]}  # fmt: skip
    assert set(values) == set(CONDITIONS)
    for name, value in values.items():
        document = {"policy_id": "p", "version": "1", "targets": {},
                    "rules": [{"id": "hit", "action": "human_review", "when": {name: value}},
                              {"id": "miss", "action": "none"}]}  # fmt: skip
        policy = parse_policy(document)
        assert sql_rules(items, policy) == [decide(i, policy).rule_id for i in items], name


def test_the_simulation_page_reads_at_1280_px_and_scales_the_review_load_to_it(tmp_path):
    """Two months of uploads, a few a day, some labelled: the review-load chart is drawn on the
    load's scale and the capacity of 2000 a day is said in words; near the load it is a line."""
    from tools import simulate
    from warehouse.embedded import write_catalog

    from .conftest import seed_table
    from .pages import assert_readable

    items = random_items(600, seed=5)
    rows = [dataclasses.replace(item, event=dataclasses.replace(item.event, uploaded_at=T0 + dt.timedelta(days=i % 60))
                                ).to_row() for i, item in enumerate(items)]  # fmt: skip
    labels = [{"content_id": r["content_id"], "label": "synthetic" if (r["fused_score"] or 0) > 0.5 else "real",
               "labelled_at": T0} for r in rows[::3]]  # fmt: skip
    seed_table(tmp_path, "media_scores", rows)
    seed_table(tmp_path, "retraining_labels", labels)
    write_catalog(str(tmp_path))
    pages = {}
    for name, capacity in (("dwarfed", []), ("near", ["--capacity", "4"])):
        out = tmp_path / name
        assert simulate.run(["--warehouse", str(tmp_path), "--candidate", "policies/candidates/reduce_reach_possible.yaml",
                             "--out", str(out), *capacity]) == 0  # fmt: skip
        page = (out / "simulation.html").rename(out / f"simulation_{name}_capacity.html")  # a screenshot each
        assert_readable(page)
        pages[name] = html.unescape(page.read_text())
    result = json.loads((tmp_path / "dwarfed" / "simulation.json").read_text())
    assert len(result["review_load"]["days"]) == 60 and result["quality"]["labelled_items"] == 200
    for page in pages.values():
        assert '{"' not in page  # figures in tables and sentences, not JSON
        assert "Expected cost per labelled item, in the units of the error costs file" in page
    assert "Reviewer capacity: 2,000 items a day, not drawn: the busiest day's load" in pages["dwarfed"]
    assert "Reviewer capacity: 4 items a day (the dashed line)" in pages["near"] and "not drawn" not in pages["near"]
