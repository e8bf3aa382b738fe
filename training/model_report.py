"""Every figure of the model report from nothing, in stages that survive a stop.

    python -m training.model_report --out data/model-report [--cache data/sources] [--dry_run]
        [--train_modality visual [--keep_from models/served]]

The stages, in order: the check that no training photograph is a held-out one
(`training.sources overlap`), the picture generators trained here (`training.image_synthesis train`),
each training source's uploads (one folder a source), the fixed held-out set, the generated
corpus (12000 items, seed 5), their features (one run id a corpus: `generator`,
`sources_<name>`), training, evaluation, thresholds on the validation split, the evasion sets
and the fixed held-out set through the real job, and the runs with each family and source held
out. A stage that finished leaves `OUT/.done/<stage>`; run the same command again after a stop
and it goes on from the first stage without one (delete a stamp to redo its stage). A feature
run that stopped half way is started again after its run's files are removed, so no upload's
features are written twice. On 2 cores the whole takes most of a day; the generators, the
sources and the features about five hours of it.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from schemas.vocabulary import MODALITIES
from training.evasion import VARIANTS as EVASION_SETS
from training.sources import DEFAULT_CACHE, sources_for
from warehouse.embedded import run_files

# Every job of the report (feature runs and scoring runs) on both cores.
RUNNER = ("--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing")


def _py(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def stages(
    out: Path, cache: str, keep: tuple[str, str] | None = None
) -> Iterator[tuple[str, list[list[str]], str | None]]:
    """(stage name, its commands, the run id whose files it writes to the training warehouse).
    `keep`: (the modality to train, the registry whose other models are kept as served)."""
    warehouse = str(out / "warehouse")
    # No training photograph is a held-out one resized or re-encoded (a package shipping another's picture).
    yield "overlap", [_py("training.sources", "overlap", "--cache", cache)], None
    yield "generators", [_py("training.image_synthesis", "train", "--cache", cache)], None
    names = [source.name for source in sources_for("train")]
    for name in names:  # the short stages first: a stop loses at most the one under way
        command = _py("training.source_corpus", "--out", str(out / "sources" / name), "--role", "train",
                      "--cache", cache, "--source", name)  # fmt: skip
        yield f"sources_{name}", [command], None
    heldout = _py("training.source_corpus", "--out", str(out / "heldout"), "--role", "heldout", "--cache", cache)
    yield "heldout", [heldout], None
    yield "corpus", [_py("training.corpus", "--out", str(out / "corpus"), "--count", "12000", "--seed", "5")], None
    corpora = {"generator": out / "corpus", **{f"sources_{name}": out / "sources" / name for name in names}}
    for run_id, folder in corpora.items():
        command = _py("pipelines.batch", "--input", str(folder / "manifest.jsonl"), "--warehouse", warehouse,
                      "--run_id", run_id, "--features_only", *RUNNER)  # fmt: skip
        yield f"features_{run_id}", [command], run_id
    labels = ["--labels", *(str(folder / "labels.jsonl") for folder in corpora.values())]
    models, evaluation = str(out / "models"), str(out / "evaluation")
    kept = ["--modality", keep[0], "--keep_from", keep[1]] if keep else []
    yield "train", [_py("training.train", "--warehouse", warehouse, "--out", models, *kept, *labels)], None
    evaluate = _py("training.evaluate", "--warehouse", warehouse, "--model_dir", models, "--out", evaluation, *labels)
    yield "evaluate", [evaluate], None
    thresholds = _py("training.thresholds", "--scores", f"{evaluation}/validation_scores.jsonl",
                     "--check", f"{evaluation}/test_scores.jsonl", "--costs", "policies/error_costs.yaml",
                     "--out", str(out / "thresholds.json"), "--prevalence", "0.05")  # fmt: skip
    yield "thresholds", [thresholds], None
    evasion = out / "evasion"
    yield (
        "evasion_sets",
        [_py("training.evasion", "--corpus", *map(str, corpora.values()), "--out", str(evasion))],
        None,
    )
    scored = [(f"evasion_{name}", evasion / name, str(out)) for name in EVASION_SETS]
    for stage, folder, media_root in [*scored, ("heldout_job", out / "heldout", None)]:
        job = _py("pipelines.batch", "--input", str(folder / "manifest.jsonl"), "--warehouse", str(folder / "warehouse"),
                  "--model_dir", models, "--write_disposition", "truncate", *RUNNER)  # fmt: skip
        if media_root:
            job += ["--media_root", media_root]
        outcomes = _py("training.outcomes", "--warehouse", str(folder / "warehouse"),
                       "--labels", str(folder / "labels.jsonl"), "--out", str(folder / "outcomes.json"))  # fmt: skip
        yield stage, [job, outcomes], None
    held_out_runs = _py("training.evaluate", "--warehouse", warehouse, "--model_dir", models,
                        "--out", str(out / "held_out_runs"), *labels, "--leave_one_family_out",
                        "--leave_one_source_out", "--lofo_epochs", "20")  # fmt: skip
    yield "held_out_runs", [held_out_runs], None


def remove_run(warehouse: Path, run_id: str) -> list[Path]:
    """Deletes what run `run_id` wrote to an embedded warehouse (every table's files of it, its
    training examples, the files it had staged when it stopped); returns them."""
    files = run_files(warehouse, run_id)
    for path in files:
        path.unlink()
    return files


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.model_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="Where every stage writes (data/model-report).")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="The fetched sources (make sources).")
    parser.add_argument("--dry_run", action="store_true", help="Print the stages left and their commands; run none.")
    parser.add_argument(
        "--train_modality",
        default=None,
        choices=MODALITIES,
        help="Train this detector alone and keep the others as --keep_from serves them (training.train "
        "--keep_from): a release that changes one detector. Default: every detector trained.",
    )
    parser.add_argument(
        "--keep_from", default=None, help="The registry the other detectors are kept from (default: models/served)."
    )
    args = parser.parse_args(argv)
    if args.keep_from and not args.train_modality:
        parser.error("--keep_from keeps the detectors not trained: name the one to train with --train_modality")
    out = Path(args.out)
    done = out / ".done"
    keep = (args.train_modality, args.keep_from or "models/served") if args.train_modality else None
    for stage, commands, run_id in stages(out, args.cache, keep):
        if (done / stage).exists():
            continue
        print(f"== {stage}", file=sys.stderr, flush=True)
        for command in commands:
            print("   " + shlex.join(command), file=sys.stderr, flush=True)
        if args.dry_run:
            continue
        if run_id and (out / "warehouse").exists():
            removed = remove_run(out / "warehouse", run_id)
            if removed:
                print(f"   removed {len(removed)} files of the stopped run {run_id}", file=sys.stderr)
        for command in commands:
            if subprocess.run(command).returncode != 0:
                print(f"stage {stage} failed: {shlex.join(command)}", file=sys.stderr)
                return 1
        done.mkdir(parents=True, exist_ok=True)
        (done / stage).touch()
    return 0


if __name__ == "__main__":
    sys.exit(run())
