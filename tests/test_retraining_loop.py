"""The retraining loop on a small warehouse: reviewers' verdicts become labels, a training set
is built from the warehouse, challengers are trained, the gate refuses the one that regresses
on a held-out set and passes the one that does not, and that one is promoted. (A running
streaming job picking a promotion up is tests/test_streaming.py's model refresh test; a
rollback is tests/test_release.py's.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from models.registry import SERVED_MODEL_DIR, resolve_model
from tools import sample_verdicts
from training import corpus, release, train, warehouse_set

from .conftest import query_warehouse


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.slow
def test_verdicts_become_a_training_set_and_the_gate_refuses_a_regressing_challenger(tmp_path):
    from pipelines import batch

    made = tmp_path / "corpus"
    corpus.generate_corpus(made, count=96, seed=23)
    events = [json.loads(line) for line in (made / "manifest.jsonl").read_text().splitlines()]
    labels = {row["content_id"]: row for row in map(json.loads, (made / "labels.jsonl").read_text().splitlines())}
    events.sort(key=lambda e: e["uploaded_at"])
    curated, held_out, traffic = events[:48], events[48:68], events[68:]
    manifests = {name: _write(made / f"{name}.jsonl", rows)
                 for name, rows in (("curated", curated + held_out), ("traffic", traffic))}  # fmt: skip
    registry, warehouse = tmp_path / "registry", tmp_path / "wh"
    shutil.copytree(SERVED_MODEL_DIR, registry)
    common = ["--warehouse", str(warehouse), "--model_dir", str(registry), "--min_cell_count", "1"]
    assert batch.run(["--input", str(manifests["curated"]), "--features_only", *common[:2], *common[4:]]) == 0
    assert batch.run(["--input", str(manifests["traffic"]), *common]) == 0

    # Reviewers answer the queue; their verdicts are the traffic's labels.
    verdicts = tmp_path / "verdicts.jsonl"
    assert sample_verdicts.run(["--warehouse", str(warehouse), "--labels", str(made / "labels.jsonl"),
                                "--out", str(verdicts)]) == 0  # fmt: skip
    assert batch.run(["--reviews", str(verdicts), *common]) == 0
    reviewed = {cid for (cid,) in query_warehouse(warehouse, "select content_id from retraining_labels")}
    assert reviewed and reviewed <= {e["content_id"] for e in traffic}

    days = sorted(e["uploaded_at"][:10] for e in traffic)
    curated_labels = _write(tmp_path / "curated_labels.jsonl", [labels[e["content_id"]] for e in curated])
    held_out_labels = _write(tmp_path / "held_out_labels.jsonl", [labels[e["content_id"]] for e in held_out])
    training_set = tmp_path / "set"
    assert warehouse_set.run(["--warehouse", str(warehouse), "--start", days[0], "--end", "2099-01-01",
                              "--out", str(training_set), "--curated", str(curated_labels)]) == 0  # fmt: skip
    rows = [json.loads(line) for line in (training_set / "labels.jsonl").read_text().splitlines()]
    assert {r["content_id"] for r in rows} == reviewed  # people's labels only, every one of them
    assert all(r["label"] == labels[r["content_id"]]["label"] for r in rows)

    # Two challengers with the same code and seeds, each the served set with one model trained
    # anew: a visual model on the labels inverted (a join gone wrong), a metadata model on the
    # labels as they are.
    def challenger(name: str, modality: str, invert: bool) -> Path:
        out = tmp_path / name
        shutil.copytree(SERVED_MODEL_DIR, out)
        files = [training_set / "labels.jsonl", curated_labels]
        if invert:
            flipped = []
            for path in files:
                for row in map(json.loads, path.read_text().splitlines()):
                    bit = {"real": 1, "synthetic": 0}[row["label"]]
                    flipped.append({**row, "label": ("real", "synthetic")[1 - bit], "metadata_label": 1 - bit,
                                    "visual_label": None if row.get("visual_label") is None else 1 - bit})  # fmt: skip
            files = [_write(tmp_path / "inverted.jsonl", flipped)]
        assert train.run(["--warehouse", str(warehouse), "--labels", *map(str, files), "--out", str(out),
                          "--modality", modality, "--epochs", "3", "--version", "20991231T000000",
                          "--quiet"]) == 0  # fmt: skip
        return out

    shipped = yaml.safe_load(Path("policies/promotion_gate.yaml").read_text())
    sets = ["--set", f"heldout=held_out:{warehouse}:{held_out_labels}"]
    gate = ["--model_dir", str(registry), "--warehouse", str(tmp_path / "releases-wh"), *sets,
            "--gate", "policies/promotion_gate.yaml"]  # fmt: skip
    assert release.run(["gate", "--challenger", str(challenger("inverted", "visual", True)), "--out", str(tmp_path / "bad"),
                        *gate]) == 1  # fmt: skip
    bad = json.loads((tmp_path / "bad" / "release.json").read_text())
    assert bad["verdict"] == "fail"
    assert any(c["name"] == "held_out_auc" and not c["passed"] for c in bad["criteria"])
    with pytest.raises(SystemExit):
        release.run(["promote", "--release", str(tmp_path / "bad" / "release.json"), "--model_dir", str(registry),
                     "--approved_by", "owner-1", "--warehouse", str(tmp_path / "releases-wh")])  # fmt: skip
    assert resolve_model(registry, "metadata").version == "20261129T210000"

    retrained = challenger("retrained", "metadata", False)
    report = tmp_path / "MODEL_REPORT.md"
    report.write_text("# Model report\n\nWhat the models do.\n")
    assert release.run(["gate", "--challenger", str(retrained), "--out", str(tmp_path / "good"), *gate,
                        "--report", str(report)]) == 0  # fmt: skip
    written = report.read_text()
    assert written.startswith("# Model report\n\n<!-- release section") and written.endswith("What the models do.\n")
    assert (
        "| held_out_auc | heldout:fused |" in written
        and f": PASS under model-promotion@{shipped['version']}" in written
    )
    assert release.run(["promote", "--release", str(tmp_path / "good" / "release.json"), "--model_dir", str(registry),
                        "--approved_by", "owner-1", "--warehouse", str(tmp_path / "releases-wh")]) == 0  # fmt: skip
    assert resolve_model(registry, "metadata").version == "20991231T000000"
    events = query_warehouse(tmp_path / "releases-wh", "select event, verdict from model_releases")
    assert events == [("gated", "fail"), ("gated", "pass"), ("promoted", "pass")]
