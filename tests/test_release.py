"""Model releases (training/release.py): the promotion gate as data, promotion and rollback of
the registry's current choice, every step a `model_releases` row."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from models.registry import SERVED_MODEL_DIR, resolve_model, resolve_model_set
from training.release import Gate, GateError, ShadowCriteria, judge, load_gate, run

GATE = load_gate("policies/promotion_gate.yaml")


def _figures(content_auc, fused, visual=0.95, fpr=0.0, real=500):
    return {"auc": {"visual": visual, "audio": 0.9, "metadata": 0.8, "fused": fused}, "content_auc": content_auc,
            "items": 900, "real_items": real, "removal_fpr_on_real": fpr}  # fmt: skip


def test_the_shipped_gate_file_loads_and_a_misspelt_key_is_refused_naming_it():
    assert (GATE.gate_id, GATE.held_out_max_auc_drop, GATE.max_removal_fpr_on_real) == ("model-promotion", 0.02, 0.001)
    with open("policies/promotion_gate.yaml") as gate_file:
        document = yaml.safe_load(gate_file)
    with pytest.raises(GateError, match="held_out_max_auc_dorp: unknown field"):
        Gate.parse({**{k: v for k, v in document.items() if k != "held_out_max_auc_drop"},
                    "held_out_max_auc_dorp": 0.02})  # fmt: skip
    with pytest.raises(GateError, match=r"modality_auc_tolerance.visul: unknown field \(did you mean 'visual'\?\)"):
        Gate.parse({**document, "modality_auc_tolerance": {"visul": 0.01}})
    with pytest.raises(GateError, match="max_removal_fpr_on_real: expected a number in"):
        Gate.parse({**document, "max_removal_fpr_on_real": "0.1%"})


def test_the_gate_refuses_a_held_out_regression_and_passes_a_challenger_within_its_margins():
    kinds = {"heldout_visual": "held_out", "traffic": "traffic"}
    champion = {"heldout_visual": _figures(0.80, 0.82), "traffic": _figures(0.97, 0.98)}
    steady = {"heldout_visual": _figures(0.79, 0.83), "traffic": _figures(0.975, 0.975, visual=0.945)}
    regressed = {"heldout_visual": _figures(0.74, 0.83), "traffic": _figures(0.98, 0.99)}
    # content and fused hold while the held-out set's own modality falls
    visual_fell = {"heldout_visual": _figures(0.80, 0.82, visual=0.90), "traffic": _figures(0.97, 0.98)}
    over_budget = {"heldout_visual": _figures(0.85, 0.9), "traffic": _figures(0.98, 0.99, fpr=0.004)}

    def verdicts(challenger):
        pairs = {name: {"champion": champion[name], "challenger": challenger[name]} for name in kinds}
        return {(c.name, c.subject): c.passed for c in judge(GATE, pairs, kinds)}

    assert all(verdicts(steady).values())
    failed = [key for key, passed in verdicts(regressed).items() if not passed]
    assert failed == [("held_out_auc", "heldout_visual:content")]
    assert [k for k, p in verdicts(visual_fell).items() if not p] == [("held_out_auc", "heldout_visual:visual")]
    assert [k for k, p in verdicts(over_budget).items() if not p] == [("removal_fpr", "traffic")]


def test_an_auc_on_too_few_items_of_a_class_is_reported_not_judged():
    from training.release import verdict_of

    few = {**_figures(0.5, 0.5), "classes": {"fused": [4, 90], "content": [4, 90], "visual": [4, 60]}}
    pairs = {"t": {"champion": _figures(0.9, 0.9), "challenger": few}}
    criteria = judge(GATE, pairs, {"t": "traffic"})
    assert {c.subject for c in criteria if not c.judged} == {"t:fused", "t:visual"}
    assert all(c.judged for c in criteria if c.subject in ("t:audio", "t:metadata"))  # no counts: judged
    assert verdict_of(criteria) == "pass" and not all(c.passed for c in criteria)
    enough = {**few, "classes": {"fused": [40, 90], "visual": [30, 60]}}
    judged = judge(GATE, {"t": {"champion": _figures(0.9, 0.9), "challenger": enough}}, {"t": "traffic"})
    assert verdict_of(judged) == "fail"
    assert verdict_of(judge(GATE, pairs, {"t": "held_out"})) == "fail"  # a fixed held-out set: judged whatever its size
    with pytest.raises(GateError, match="min_items_per_class"):
        Gate.parse({**yaml.safe_load(Path("policies/promotion_gate.yaml").read_text()), "min_items_per_class": 0})


def test_shadow_traffic_is_judged_when_the_release_ran_in_shadow():
    pairs = {"t": {"champion": _figures(0.9, 0.9), "challenger": _figures(0.9, 0.9)}}
    few = judge(GATE, pairs, {"t": "traffic"}, shadow={"items": 12, "agreement": 1.0, "mean_score_shift": 0.0})
    assert [c.name for c in few if not c.passed] == ["shadow_items", "shadow_agreement", "shadow_score_shift"]
    moved = judge(GATE, pairs, {"t": "traffic"}, shadow={"items": 500, "agreement": 0.97, "mean_score_shift": 0.2})
    assert [c.name for c in moved if not c.passed] == ["shadow_score_shift"]


def _release(tmp_path, challenger, verdict="pass"):
    versions = {m: d.version for m, d in resolve_model_set(challenger).models.items()}
    release = {"release_id": f"r-{verdict}", "verdict": verdict, "versions": versions, "challenger_dir": str(challenger),
               "criteria": [], "figures": {}, "gate": "model-promotion@1.0.0"}  # fmt: skip
    path = tmp_path / f"release-{verdict}.json"
    path.write_text(json.dumps(release))
    return path


def test_promotion_serves_the_release_rollback_serves_the_one_before_and_each_is_a_row(tmp_path):
    from models.handlers import SavedModelSignatureHandler

    from .conftest import query_warehouse

    registry, challenger, warehouse = tmp_path / "registry", tmp_path / "challenger", tmp_path / "wh"
    shutil.copytree(SERVED_MODEL_DIR, registry)
    served = resolve_model(registry, "metadata")
    _challenger_with_metadata(challenger)
    handler = SavedModelSignatureHandler(served.path, "metadata", refresh_s=1)
    common = ["--model_dir", str(registry), "--warehouse", str(warehouse), "--approved_by", "owner-1"]

    with pytest.raises(SystemExit):  # a release its gate failed is never promoted
        run(["promote", "--release", str(_release(tmp_path, challenger, "fail")), *common])
    assert run(["promote", "--release", str(_release(tmp_path, challenger)), *common]) == 0
    assert resolve_model(registry, "metadata").version == "20991231T000000"
    refreshed = handler._load_newer(served.path, served.version)  # what a running job's refresh finds
    assert refreshed is not None and refreshed.version == "20991231T000000"

    baseline = next(p.stem for p in (registry / "releases").glob("baseline-*.json"))
    assert run(["rollback", "--to", baseline, *common]) == 0
    assert resolve_model(registry, "metadata").version == served.version
    assert handler._load_newer(refreshed.path, refreshed.version).version == served.version
    events = query_warehouse(warehouse, "select event, release_id, approved_by from model_releases")
    assert events == [("promoted", "r-pass", "owner-1"), ("rolled_back", baseline, "owner-1")]
    with pytest.raises(SystemExit):
        run(["rollback", "--to", "no-such-release", *common])


def test_the_gate_writes_the_model_reports_release_section_in_place_of_the_last(tmp_path):
    from training.release import release_section, write_section

    figures = {"heldout": {"champion": {**_figures(0.8, 0.9), "versions": {}}, "challenger": _figures(0.81, 0.9)}}
    criteria = judge(GATE, {"heldout": figures["heldout"]}, {"heldout": "held_out"})
    release = {"release_id": "r1", "verdict": "pass", "gate": "model-promotion@1.0.0", "gated_at": "2026-12-07T01:00:00",
               "versions": {"visual": "V2"}, "champion_versions": {"visual": "V1"}, "policy": "p.yaml",
               "criteria": [c.__dict__ for c in criteria], "figures": figures,
               "sets": [{"name": "heldout", "kind": "held_out"}]}  # fmt: skip
    report = tmp_path / "MODEL_REPORT.md"
    report.write_text("# Models\n\nIntro.\n\n## Older figures\n")
    write_section(report, release_section(release))
    write_section(report, release_section({**release, "release_id": "r2"}))
    text = report.read_text()
    assert text.count("<!-- release section") == 1 and "## Release r2: PASS" in text and "r1" not in text
    assert "| heldout (held_out, 900 items) | content AUC | 0.8000 | 0.8100 |" in text
    assert text.startswith("# Models\n\n<!-- release section") and text.endswith("Intro.\n\n## Older figures\n")


@pytest.mark.slow
def test_a_challenger_in_shadow_scores_every_upload_acts_on_none_and_the_gate_reads_it(tmp_path):
    """The batch job with --shadow_model_dir: each scored upload gets a shadow_scores row with
    what the live policy would have done, no decision or event comes of it, and the gate's
    shadow figures read agreement and shift from it (a challenger equal to the champion: the
    same action on every upload, no shift)."""
    from pipelines import batch
    from training import corpus
    from training.release import model_versions, shadow_on_traffic

    from .conftest import query_warehouse

    corpus.generate_corpus(tmp_path / "uploads", count=12, seed=5)
    challenger = tmp_path / "challenger"
    shutil.copytree(SERVED_MODEL_DIR, challenger)
    warehouse = tmp_path / "wh"
    assert batch.run(["--input", str(tmp_path / "uploads" / "manifest.jsonl"), "--warehouse", str(warehouse),
                      "--shadow_model_dir", str(challenger), "--min_cell_count", "1"]) == 0  # fmt: skip
    scored = query_warehouse(warehouse, "select content_id, content_score from media_scores")
    shadowed = query_warehouse(warehouse, "select content_id, content_score from shadow_scores")
    assert [c for c, _ in shadowed] == [c for c, _ in scored]
    assert all(s == pytest.approx(t, abs=1e-6) for (_, s), (_, t) in zip(shadowed, scored) if s is not None)
    assert query_warehouse(warehouse, "select count(*) from enforcement_decisions") == [(len(scored),)]
    figures = shadow_on_traffic(str(warehouse), model_versions(str(challenger)))
    assert (figures["items"], figures["agreement"], figures["mean_score_shift"]) == (len(scored), 1.0, 0.0)
    pairs = {"t": {"champion": _figures(0.9, 0.9), "challenger": _figures(0.9, 0.9)}}
    shadow = [c for c in judge(GATE, pairs, {"t": "traffic"}, figures) if c.name.startswith("shadow")]
    assert [c.passed for c in shadow] == [False, False, False]  # 12 uploads: fewer than the gate's 100 to judge
    enough = dataclasses.replace(GATE, shadow=ShadowCriteria(10, 0.95, 0.05))
    assert all(c.passed for c in judge(enough, pairs, {"t": "traffic"}, figures))


def _challenger_with_metadata(challenger, version: str = "20991231T000000"):
    """The served set with a metadata model of a version of its own."""
    served = resolve_model(SERVED_MODEL_DIR, "metadata")
    shutil.copytree(SERVED_MODEL_DIR, challenger)
    shutil.copytree(challenger / "metadata" / served.version, challenger / "metadata" / version)
    card_path = challenger / "metadata" / version / "model_card.json"
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "version": version}))
    return served.version


@pytest.mark.slow
def test_a_release_in_shadow_scores_beside_the_champion_until_its_date_and_not_after(tmp_path):
    """`release shadow` puts a challenger beside the champion in the registry: a job launched
    from the registry scores every upload with it too (the champion still decides), and once
    the release's date has passed the next job does not."""
    import argparse

    from pipelines import batch
    from pipelines.launch import _shadow_models
    from training import corpus

    from .conftest import query_warehouse

    registry, challenger, warehouse = tmp_path / "registry", tmp_path / "challenger", tmp_path / "wh"
    shutil.copytree(SERVED_MODEL_DIR, registry)
    champion_version = _challenger_with_metadata(challenger)
    common = ["--model_dir", str(registry), "--warehouse", str(warehouse), "--approved_by", "owner-1"]
    assert run(["shadow", "--challenger", str(challenger), "--until", "2999-01-01", *common]) == 0
    assert resolve_model(registry, "metadata").version == champion_version  # copied in, not served
    corpus.generate_corpus(tmp_path / "uploads", count=4, seed=5)
    job = ["--input", str(tmp_path / "uploads" / "manifest.jsonl"), "--warehouse", str(warehouse),
           "--model_dir", str(registry), "--min_cell_count", "1"]  # fmt: skip
    assert batch.run(job) == 0
    scored = query_warehouse(warehouse, "select content_id from media_scores")
    versions = query_warehouse(warehouse, "select distinct model_versions from shadow_scores")
    assert len(query_warehouse(warehouse, "select content_id from shadow_scores")) == len(scored) > 0
    assert len(versions) == 1 and "metadata=20991231T000000" in versions[0][0]
    live = query_warehouse(warehouse, "select distinct metadata_model_version from media_scores")
    assert live == [(champion_version,)]

    # Once the release's date has passed, a job launched from the registry scores in shadow no more.
    options = argparse.Namespace(features_only=False, shadow_model_dir=None, model_dir=str(registry))
    assert _shadow_models(options, pytest.fail)[1].year == 2999
    assert run(["shadow", "--challenger", str(challenger), "--until", "2000-01-01", *common]) == 0
    assert _shadow_models(options, pytest.fail) == (None, None)
    events = query_warehouse(warehouse, "select event, approved_by from model_releases order by happened_at")
    assert events == [("shadowed", "owner-1"), ("shadowed", "owner-1")]
    with pytest.raises(SystemExit):
        run(["shadow", "--challenger", str(challenger), "--until", "next week", *common])


def test_an_upload_made_after_the_shadow_period_is_not_shadow_scored():
    import datetime as dt
    import types

    from pipelines.graph import uploaded_before
    from schemas.records import UploadEvent

    until = dt.datetime(2026, 12, 14, tzinfo=dt.UTC)

    def features(at):
        return types.SimpleNamespace(event=UploadEvent("c1", "c1.jpg", "a1", at))

    assert uploaded_before(features(until - dt.timedelta(seconds=1)), until)
    assert not uploaded_before(features(until), until)
