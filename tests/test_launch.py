"""The one launch path of both jobs: strict flags, one-line errors, the same checks, and no
flag accepted and then ignored. Runs the jobs' real `run()` up to the pipeline (no media)."""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

from pipelines import batch, launch, streaming
from pipelines.launch import EXIT_DEAD_LETTERS, EXIT_UNBALANCED, Launch
from pipelines.options import DEFAULT_POLICY, FLAGS, JOB_FLAGS, flag_actions, job_parser
from pipelines.reconcile import Reconciliation

ROOT = Path(__file__).resolve().parents[1]
SUBSCRIPTION = "projects/t-and-s-test/subscriptions/uploads-launch"


def refused(capsys, job: str, argv: list[str]) -> str:
    """The one line a refused launch prints (exit status 2)."""
    module = batch if job == "batch" else streaming
    with pytest.raises(SystemExit) as stopped:
        module.run(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "usage:" not in err, err
    return err


@pytest.fixture
def manifest(tmp_path) -> Path:
    path = tmp_path / "uploads" / "manifest.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"content_id": "c1", "media_uri": "a.png", "account_id": "a1",
                                "uploaded_at": "2026-11-01T00:00:00Z"}) + "\n")  # fmt: skip
    return path


def batch_argv(manifest: Path, tmp_path: Path) -> list[str]:
    return ["--input", str(manifest), "--warehouse", str(tmp_path / "wh")]


def streaming_argv(tmp_path: Path) -> list[str]:
    return ["--subscription", SUBSCRIPTION, "--warehouse", str(tmp_path / "wh")]


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (["--polciy", DEFAULT_POLICY], "unrecognized flag --polciy; did you mean --policy?"),
        (["--min_cell", "0"], "unrecognized flag --min_cell; did you mean --min_cell_count?"),  # no abbreviations
        (["--min_cell_cout", "0"], "did you mean --min_cell_count?"),
        (["stray"], "unexpected argument 'stray'"),
    ],
)
def test_a_misspelt_or_abbreviated_flag_is_refused_in_one_line_by_both_jobs(capsys, manifest, tmp_path, given, named):
    assert named in refused(capsys, "batch", [*batch_argv(manifest, tmp_path), *given])
    assert named in refused(capsys, "streaming", [*streaming_argv(tmp_path), *given])
    assert not (tmp_path / "wh").exists()  # refused before anything was written


def test_a_flag_of_the_other_job_is_refused_naming_the_job_it_belongs_to(capsys, manifest, tmp_path):
    only_batch = set(JOB_FLAGS["batch"]) - set(JOB_FLAGS["streaming"])
    assert {"input", "features_only", "write_disposition", "appeals", "reviews", "statements_dir"} <= only_batch
    for name in sorted(only_batch):
        value = [] if FLAGS[name][1].get("action") == "store_true" else ["x"]
        err = refused(capsys, "streaming", [*streaming_argv(tmp_path), f"--{name}", *value])
        assert f"--{name} is not a flag of this job: it belongs to python -m pipelines.batch" in err
    for name in sorted(set(JOB_FLAGS["streaming"]) - set(JOB_FLAGS["batch"])):
        err = refused(capsys, "batch", [*batch_argv(manifest, tmp_path), f"--{name}", "1"])
        assert f"--{name} is not a flag of this job: it belongs to python -m pipelines.streaming" in err


def test_beam_options_still_pass(manifest, tmp_path):
    options, beam_argv = launch.parse_job_flags("batch", [*batch_argv(manifest, tmp_path), "--runner", "DirectRunner",
                                                          "--direct_num_workers=2", "--temp_location", "/tmp"])  # fmt: skip
    assert beam_argv == ["--runner", "DirectRunner", "--direct_num_workers=2", "--temp_location", "/tmp"]
    assert options.input == str(manifest)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["--min_cell_count", "-5"], "--min_cell_count must be at least 1"),
        (["--max_pixels", "0"], "--max_pixels must be positive"),
        (["--min_batch_size", "4", "--max_batch_size", "2"], "--max_batch_size must be at least --min_batch_size"),
        (["--events_sink", "pubsub"], "--events_sink pubsub needs --pubsub_project"),
        (["--pubsub_topic_prefix", "prod-"], "are for --events_sink pubsub"),
        (["--gpu_workers", "all"], "--gpu_workers all needs --accelerator"),
        (["--max_dead_letter_share", "2"], "--max_dead_letter_share must be between 0 and 1"),
        (["--policy", "no/such.yaml"], "--policy: "),
        (["--shadow_policy", DEFAULT_POLICY], "--shadow_policy has the live policy's id and version"),
        (["--second_opinion_model", "no/such/model"], "--second_opinion_model: no SavedModel"),
        (["--model_dir", "EMPTY"], "--model_dir: no model versions found"),
        (["--hash_bank", "BANK"], "--hash_bank: "),
        (["--min_cell_count", "ten"], "argument --min_cell_count: invalid int value: 'ten'"),
        (["--gpu_workers", "some"], "argument --gpu_workers: invalid choice"),
    ],
)
def test_both_jobs_refuse_the_same_bad_values(capsys, manifest, tmp_path, given, message):
    (tmp_path / "empty_models").mkdir()
    (tmp_path / "bank.jsonl").write_text('{"pdq": "not hex"}\n')
    given = [{"EMPTY": str(tmp_path / "empty_models"), "BANK": str(tmp_path / "bank.jsonl")}.get(g, g) for g in given]
    for job, argv in (("batch", batch_argv(manifest, tmp_path)), ("streaming", streaming_argv(tmp_path))):
        assert message in refused(capsys, job, [*argv, *given]), job


@pytest.mark.parametrize(
    ("job", "given", "message"),
    [
        ("batch", ["--bigquery_project", "p"], "--bigquery_project is where --input_query"),
        ("batch", ["--bigquery_write_method", "streaming_inserts"], "--bigquery_write_method is for a BigQuery"),
        ("batch", ["--statements_dir", "x"], "--statements_dir is for a BigQuery warehouse"),
        ("batch", ["--features_only", "--model_versions", "visual=1"], "--features_only takes no"),
        ("streaming", ["--allowed_lateness_s", "0"], "--allowed_lateness_s must be positive"),
        ("streaming", ["--model_refresh_s", "-1"], "--model_refresh_s must be 0 (off) or positive"),
        ("streaming", ["--expected_appeals", "3"], "--expected_appeals counts the appeals of --appeals_subscription"),
        ("streaming", ["--reviews_subscription", "reviews"], "is not a subscription path"),
    ],
)
def test_a_flag_that_would_be_ignored_in_this_combination_is_refused(capsys, manifest, tmp_path, job, given, message):
    argv = batch_argv(manifest, tmp_path) if job == "batch" else streaming_argv(tmp_path)
    assert message in refused(capsys, job, [*argv, *given])


def test_a_warehouse_the_job_could_not_write_is_refused_in_one_line(capsys, manifest, tmp_path, monkeypatch):
    given = ["--input", str(manifest)]
    (tmp_path / "a_file").write_text("")
    assert "is a file, not a warehouse directory" in refused(capsys, "batch", [*given, "--warehouse",
                                                                             str(tmp_path / "a_file")])  # fmt: skip
    assert "cannot be a warehouse directory" in refused(capsys, "batch", [*given, "--warehouse",
                                                                         str(tmp_path / "a_file" / "wh")])  # fmt: skip
    with socket.socket() as free:  # a port nothing listens on once closed
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    err = refused(capsys, "streaming", ["--subscription", SUBSCRIPTION, "--warehouse", "bq://p1.d1",
                                        "--bigquery_endpoint", f"http://127.0.0.1:{port}"])  # fmt: skip
    assert f"--bigquery_endpoint: nothing answers at http://127.0.0.1:{port}" in err
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    assert "no Google credentials found" in refused(capsys, "batch", [*given, "--warehouse", "bq://p1.d1"])


def test_help_lists_every_flag_the_job_takes_and_nothing_else():
    for job, names in JOB_FLAGS.items():
        out = subprocess.run([sys.executable, "-m", f"pipelines.{job}", "--help"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        listed = set(re.findall(r"^  (?:-h, )?(--\w+)", out, flags=re.MULTILINE))  # the flags' own lines
        assert {f"--{name}" for name in names} | {"--help", "--help_beam"} == listed, job
        assert "--runner" in out  # the epilog points at Beam's options


class RecordingNamespace(argparse.Namespace):
    """A namespace that remembers which flags were read."""

    def __getattribute__(self, name):
        if not name.startswith("_"):
            object.__getattribute__(self, "__dict__").setdefault("_read", set()).add(name)
        return object.__getattribute__(self, name)


class FakePipeline:
    """Stands in for beam.Pipeline: the launch path runs whole, the graph is not built."""

    def __init__(self, options):
        self.options = options

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self):
        return self.result

    @property
    def result(self):
        metrics = types.SimpleNamespace(query=lambda _filter: {"counters": []})
        return types.SimpleNamespace(state="DONE", wait_until_finish=lambda: None, metrics=lambda: metrics,
                                     cancel=lambda: None)  # fmt: skip


def test_every_flag_of_either_job_reaches_the_launch_path(monkeypatch, manifest, tmp_path):
    """What no check refuses is read on the way to the running job: a flag added to a job's
    parser and used nowhere fails here (`--help` shows only flags that do something)."""
    recorded: dict[str, set[str]] = {}

    def recording_parse(job, argv):
        options, beam_argv = parse(job, argv)
        namespace = RecordingNamespace(**vars(options))
        recorded[job] = namespace.__dict__.setdefault("_read", set())
        return namespace, beam_argv

    parse = launch.parse_job_flags
    monkeypatch.setattr(launch, "parse_job_flags", recording_parse)
    monkeypatch.setattr(batch.beam, "Pipeline", FakePipeline)
    monkeypatch.setattr(streaming.beam, "Pipeline", FakePipeline)
    monkeypatch.setattr(streaming, "build_pipeline", lambda p, job: None)
    monkeypatch.setattr(batch, "build_pipeline", lambda p, job: None)
    assert batch.run(batch_argv(manifest, tmp_path)) == 0
    # A runner other than the local one: no Pub/Sub client is opened before the (fake) run.
    assert streaming.run([*streaming_argv(tmp_path), "--runner", "DataflowRunner", "--project", "p"]) == 0
    for job in ("batch", "streaming"):
        taken = {action.dest for action in flag_actions(job_parser(job))}
        assert taken - recorded[job] == set(), f"{job} takes flags its launch never reads"


def launch_of(options: dict) -> Launch:
    fields = {name: None for name in Launch.__dataclass_fields__}
    return Launch(**{**fields, "job": "batch", "options": argparse.Namespace(**options)})


def test_a_job_whose_dead_letter_share_passes_the_threshold_exits_non_zero(capsys):
    def summary(read, dead):
        return Reconciliation(rows_read=read, scored=read - dead, dead_lettered=dead, skipped=0, reasons=(),
                              actions=(("none", read - dead),))  # fmt: skip

    every_row = launch_of({"max_dead_letter_share": 1.0})
    assert every_row.exit_status(summary(3, 3)) == EXIT_DEAD_LETTERS
    assert "3 of 3 upload rows dead-lettered" in capsys.readouterr().err
    assert every_row.exit_status(summary(3, 2)) == 0
    assert every_row.exit_status(summary(0, 0)) == 0  # nothing read: nothing to judge
    half = launch_of({"max_dead_letter_share": 0.5})
    assert half.exit_status(summary(4, 2)) == EXIT_DEAD_LETTERS
    assert half.exit_status(summary(4, 1)) == 0
    assert half.exit_status(summary(4, 1), balanced=False) == EXIT_UNBALANCED


def test_streaming_honours_gpu_workers_as_batch_does(manifest, tmp_path):
    accelerator = "type:nvidia-tesla-t4;count:1;install-nvidia-driver"
    for job, argv in (("batch", batch_argv(manifest, tmp_path)), ("streaming", streaming_argv(tmp_path))):
        options, beam_argv = launch.parse_job_flags(job, [*argv, "--accelerator", accelerator, "--gpu_workers", "all"])
        pipeline_options = launch._pipeline_options(job, options, beam_argv)
        service = pipeline_options.get_all_options()["dataflow_service_options"]
        assert service == [f"worker_accelerator={accelerator}"], job


def test_a_hash_bank_row_with_an_unknown_key_is_refused_naming_its_line(capsys, manifest, tmp_path):
    bank = tmp_path / "bank.jsonl"
    bank.write_text(
        json.dumps({"pdq": "f" * 64, "label": "known"}) + "\n" + json.dumps({"pdq": "0" * 64, "lable": "x"})
    )
    err = refused(capsys, "streaming", [*streaming_argv(tmp_path), "--hash_bank", str(bank)])
    assert f"--hash_bank: {bank}:2: lable: unknown field (did you mean 'label'?)" in err


def test_a_job_that_fails_says_so_in_one_line_and_the_traceback_needs_verbose(capsys, monkeypatch):
    def failing(argv):
        raise RuntimeError("Traceback (most recent call last):\n  File x\nOSError: disk full [while running 'Write']")

    monkeypatch.setattr(sys, "argv", ["batch", "--input", "m"])
    assert launch.main("batch", failing) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("python -m pipelines.batch: failed: RuntimeError: OSError: disk full [while running 'Write'] "
                   "(--verbose shows the traceback)")  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["batch", "--input", "m", "--verbose"])
    with pytest.raises(RuntimeError):
        launch.main("batch", failing)
