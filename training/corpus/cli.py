"""The corpus generator's command line: `python -m training.corpus --out DIR --count N ...`."""

from __future__ import annotations

import json
import os
import sys
import time

from pipelines.options import StrictParser
from training.corpus.generate import generate_corpus
from training.corpus.plans import FAMILIES


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: writes a corpus and prints a one-line summary to stderr."""
    parser = StrictParser(
        prog="python -m training.corpus",
        description="Generate a deterministic, labelled corpus of real-looking and synthetic media.",
    )
    parser.add_argument("--out", required=True, help="output directory (media/, manifest.jsonl, labels.jsonl)")
    parser.add_argument("--count", type=int, required=True, help="number of real or synthetic items to make")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    parser.add_argument("--corrupt", type=int, default=0, help="extra broken files labelled 'corrupt' (default 0)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes that make the media; the bytes are the same for any number (default: one per core)",
    )
    parser.add_argument(
        "--families",
        nargs="+",
        default=None,
        help="synthetic families to allow, across all modalities (default: all of "
        + ", ".join(f"{m}: {'/'.join(n)}" for m, n in FAMILIES.items())
        + ")",
    )
    parser.add_argument(
        "--exclude_families",
        nargs="+",
        default=None,
        help="families to leave out (for leave-one-family-out splits); the rest stay allowed (as training.train's)",
    )
    parser.add_argument(
        "--id_prefix",
        default="",
        help="put before every content_id (manifest and labels), so corpora loaded into one warehouse do not "
        "share ids (a demo's second day, say)",
    )
    args = parser.parse_args(argv)
    if args.count < 0 or args.corrupt < 0 or args.seed < 0 or args.workers < 1:
        parser.error("--count, --corrupt and --seed must not be negative, and --workers must be at least 1")
    if args.families and args.exclude_families:
        parser.error("give --families or --exclude_families, not both")
    families = None
    if args.families:
        families = list(args.families)
    elif args.exclude_families:
        excluded = set(args.exclude_families)
        known = {name for names in FAMILIES.values() for name in names}
        if excluded - known:
            parser.error(f"unknown families {sorted(excluded - known)}; expected some of {sorted(known)}")
        families = {modality: [n for n in names if n not in excluded] for modality, names in FAMILIES.items()}
    started = time.perf_counter()
    try:
        summary = generate_corpus(
            args.out, args.count, seed=args.seed, corrupt=args.corrupt, families=families, workers=args.workers
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.id_prefix:
        prefix_content_ids(args.out, args.id_prefix)
    elapsed = time.perf_counter() - started
    print(
        f"corpus: {summary['items']} items in {elapsed:.1f}s -> {summary['out_dir']} "
        f"media={summary['by_media_type']} labels={summary['by_label']} families={summary['by_family']}",
        file=sys.stderr,
    )


def prefix_content_ids(out: str, prefix: str) -> None:
    """Puts `prefix` before each content_id of the corpus's manifest and labels."""
    for name in ("manifest.jsonl", "labels.jsonl"):
        path = os.path.join(out, name)
        with open(path) as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        for row in rows:
            row["content_id"] = prefix + row["content_id"]
        with open(path, "w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
