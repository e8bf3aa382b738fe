"""The model report's runner: its stages in order, a stopped run going on where it stopped, and
a stopped feature run's files (written or staged) removed before it runs again."""

from __future__ import annotations

import sys

import pytest

from training import model_report
from training.sources import sources_for


def test_the_stages_cover_every_training_source_and_come_in_order(tmp_path):
    stages = [(name, commands, run_id) for name, commands, run_id in model_report.stages(tmp_path, "cache")]
    names = [name for name, _, _ in stages]
    assert len(names) == len(set(names))
    sources = [s.name for s in sources_for("train")]
    assert {f"sources_{s}" for s in sources} | {f"features_sources_{s}" for s in sources} <= set(names)
    # The generators are trained before any source re-draws with them; features before training.
    assert names[0] == "overlap"  # no training photograph is a held-out one, before anything is made of them
    assert names.index("generators") < names.index("sources_gan_redraw") < names.index("features_sources_gan_redraw")
    assert max(names.index(n) for n in names if n.startswith("features_")) < names.index("train")
    assert names[-1] == "held_out_runs"
    (train,) = [commands for name, commands, _ in stages if name == "train"]
    labels = train[0][train[0].index("--labels") + 1 :]
    assert len(labels) == len(sources) + 1  # the generated corpus and each source's
    runs = {run_id for _, _, run_id in stages if run_id}
    assert runs == {"generator", *(f"sources_{s}" for s in sources)}
    # one detector trained, the others kept as served
    (kept,) = [
        commands for name, commands, _ in model_report.stages(tmp_path, "cache", ("visual", "reg")) if name == "train"
    ]
    assert kept[0][kept[0].index("--modality") :][:4] == ["--modality", "visual", "--keep_from", "reg"]
    with pytest.raises(SystemExit):  # keeping needs a detector to train
        model_report.run(["--out", str(tmp_path), "--keep_from", "reg", "--dry_run"])


def test_a_stopped_run_goes_on_from_the_first_stage_without_a_stamp(tmp_path, monkeypatch, capsys):
    fake = [("one", [[sys.executable, "-c", "pass"]], None), ("two", [[sys.executable, "-c", "pass"]], "r2"),
            ("three", [[sys.executable, "-c", "raise SystemExit(3)"]], None)]  # fmt: skip

    def stages(out, cache, keep=None):
        yield from fake

    monkeypatch.setattr(model_report, "stages", stages)
    warehouse = tmp_path / "warehouse"
    (warehouse / "media_scores").mkdir(parents=True)
    stale = warehouse / "media_scores" / "r2-00001-of-99999.parquet"
    kept = warehouse / "media_scores" / "r1-00001-of-99999.parquet"
    staged = warehouse / "media_scores" / "r2.0123abcd.tmp"  # written aside, never linked into place
    stale.write_bytes(b"whole")
    staged.write_bytes(b"half")
    kept.write_bytes(b"whole")
    assert model_report.run(["--out", str(tmp_path)]) == 1  # "three" fails
    assert (tmp_path / ".done" / "one").exists() and (tmp_path / ".done" / "two").exists()
    assert not (tmp_path / ".done" / "three").exists()
    assert not stale.exists() and not staged.exists() and kept.exists()  # the run being redone starts from nothing
    assert "stage three failed" in capsys.readouterr().err
    fake[2] = ("three", [[sys.executable, "-c", "pass"]], None)
    assert model_report.run(["--out", str(tmp_path)]) == 0
    assert "== one" not in capsys.readouterr().err  # done stages are not run again
    assert (tmp_path / ".done" / "three").exists()
