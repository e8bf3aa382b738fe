"""One command for the jobs and the tools: `deepfake <command> [flags]` (installed by setup.py;
`python -m tools` is the same). Each command is a module's `run(argv)`, so
`python -m <module>` keeps working and takes the same flags.

    deepfake batch --input MANIFEST --warehouse DIR
    deepfake report --warehouse DIR --out REPORT_DIR
    deepfake <command> --help
"""

from __future__ import annotations

import difflib
import importlib
import sys

# command -> (module whose run(argv) it is, what it does); the order `deepfake --help` lists.
COMMANDS: dict[str, tuple[str, str]] = {
    # the jobs
    "batch": ("pipelines.batch", "Score a manifest (or BigQuery table) of uploads, decide, write the warehouse."),
    "streaming": ("pipelines.streaming", "Score uploads from Pub/Sub as they arrive, decide, write the warehouse."),
    "transparency": ("pipelines.transparency", "Recompute the published transparency cells over every run."),
    # compliance
    "report": ("tools.report", "The transparency report, the DSA template's parts and the monitoring page."),
    "submit-statements": ("tools.submit_statements", "Send statements of reasons to the Transparency Database."),
    # the enforcement loop
    "simulate": ("tools.simulate", "A candidate policy against the live one on stored scores."),
    "signal-health": ("tools.signal_health", "Score and signal drift, dead letters, agreement, per period."),
    "automation": ("tools.automation", "Each automated rule's agreement with reviewers and its recommended mode."),
    "sample-appeals": ("tools.sample_appeals", "Appeal outcomes for a demo warehouse's decisions."),
    "sample-verdicts": ("tools.sample_verdicts", "Reviewers' verdicts for a demo warehouse's review queue."),
    "bank": ("tools.bank", "Export the bank of confirmed violations as exchange rows, or import another platform's."),
    # streaming and warehouses
    "publish-events": ("tools.publish_events", "Publish a manifest's uploads to a Pub/Sub topic."),
    "stream-demo": ("tools.stream_demo", "The Pub/Sub emulator, live uploads and the streaming job, locally."),
    "local-servers": ("tools.local_servers", "Start or stop the local BigQuery-API server."),
    "create-tables": ("tools.bigquery", "Create a BigQuery dataset's tables and views from schemas/."),
    "compare-warehouses": ("tools.compare_warehouses", "Two warehouses' decisions, events and cells, side by side."),
    # models
    "training-set": ("training.warehouse_set", "A training set from the warehouse: labels from people, with features."),
    "train": ("training.train", "Train the detectors on a warehouse's features and labels."),
    "evaluate": ("training.evaluate", "Evaluate a model set: AUC, operating points, slices, held-out families."),
    "thresholds": ("training.thresholds", "Thresholds from error costs on validation scores."),
    "release": ("training.release", "Gate a challenger against the champion; promote, roll back, list releases."),
    "outcomes": ("training.outcomes", "What a job's decisions did to labelled items (held-out sets)."),
    "compare-reports": ("training.compare_reports", "Two evaluation reports side by side."),
    "sources": (
        "training.sources",
        "Fetch, list or check the media made elsewhere (packages' recordings, photos; overlap: no training photo a held-out one).",
    ),
    "source-corpus": ("training.source_corpus", "Upload items from media made elsewhere, as a labelled corpus."),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: deepfake <command> [flags]   (deepfake <command> --help lists a command's flags)", ""]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        nearest = difflib.get_close_matches(command, COMMANDS, n=1, cutoff=0.6)
        hint = f"; did you mean {nearest[0]}?" if nearest else "; deepfake --help lists them"
        print(f"deepfake: error: unknown command {command!r}{hint}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    if module.__name__ in ("pipelines.batch", "pipelines.streaming"):
        from pipelines.launch import main as launch_main

        sys.argv = [f"deepfake {command}", *rest]
        return launch_main(module.__name__.rsplit(".", 1)[1], module.run)
    status = (getattr(module, "run", None) or module.main)(rest)
    return 0 if status is None else int(status)


if __name__ == "__main__":
    sys.exit(main())
