"""Throughput and memory of feature extraction and of the whole batch job.

    python -m benchmarks.throughput [--count 200] [--workers 2] [--model_dir DIR]

Generates a corpus with the repository's own generator (or reuses `--corpus`), times each
extraction stage per item in this process, then runs the batch job as a subprocess (as a
user would) and reports wall time, items per second and peak resident memory. Figures go to
stdout; record them with the command line in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from schemas.records import AudioFeatures, MediaInfo, VisualFeatures
from training import corpus
from transforms.audio import extract_audio
from transforms.limits import MediaLimits
from transforms.media import Media
from transforms.metadata import probe_media
from transforms.visual import extract_visual


class Timed(NamedTuple):
    """One item's stages: its probe, the milliseconds each stage took, what they extracted."""

    info: MediaInfo
    ms: dict[str, float]
    visual: VisualFeatures | None
    audio: AudioFeatures | None


def time_stages(data: Media, limits: MediaLimits, clock=time.perf_counter) -> Timed:
    """Milliseconds `clock` counts for probe, visual and audio extraction of one item, with
    the item's probe and its features."""
    start = clock()
    info = probe_media(data, limits)
    probed = clock()
    visual_features = extract_visual(data, info.media_type, limits)
    visual = clock()
    audio_features = extract_audio(data, info.audio_codec is not None, limits)
    audio = clock()
    ms = {"probe": (probed - start) * 1000, "visual": (visual - probed) * 1000, "audio": (audio - visual) * 1000}
    return Timed(info, ms, visual_features, audio_features)


def stage_timings(manifest: Path, limit: int) -> dict[str, dict[str, float]]:
    """Milliseconds per item for probe, visual and audio extraction, by media type."""
    limits = MediaLimits()
    timings: dict[str, dict[str, list[float]]] = {}
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()][:limit]
    for row in rows:
        data = (manifest.parent / row["media_uri"]).read_bytes()
        try:
            timed = time_stages(data, limits)
            info, times = timed.info, timed.ms
        except Exception:  # corrupt items are not what this measures
            continue
        bucket = timings.setdefault(info.media_type, {"probe": [], "visual": [], "audio": []})
        for stage, ms in times.items():
            bucket[stage].append(ms)
    return {
        media_type: {stage: round(statistics.median(values), 1) for stage, values in stages.items()}
        | {"items": len(stages["probe"])}
        for media_type, stages in timings.items()
    }


def run_job(manifest: Path, warehouse: Path, workers: int, model_dir: str | None) -> dict[str, float]:
    command = [sys.executable, "-m", "pipelines.batch", "--input", str(manifest), "--warehouse", str(warehouse)]
    command += ["--write_disposition", "truncate"]
    if workers > 1:
        command += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    command += ["--model_dir", model_dir] if model_dir else ["--features_only"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise SystemExit(f"job failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 1),
        # ru_maxrss of children is the largest single child process, in KiB on Linux.
        "peak_rss_mib_largest_process": round(after.ru_maxrss / 1024, 0),
        "summary_first_line": completed.stdout.splitlines()[0] if completed.stdout else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="Items to generate (default %(default)s).")
    parser.add_argument("--corpus", default=None, help="Reuse a corpus directory instead of generating one.")
    parser.add_argument("--workers", type=int, default=2, help="DirectRunner worker processes (default %(default)s).")
    parser.add_argument("--model_dir", default=None, help="Also score with these models.")
    parser.add_argument("--stage_items", type=int, default=60, help="Items timed per stage (default %(default)s).")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.corpus) if args.corpus else Path(scratch) / "corpus"
        if not args.corpus:
            start = time.perf_counter()
            corpus.generate_corpus(root, count=args.count, seed=99, workers=os.cpu_count() or 1)
            print(
                f"corpus: {args.count} items generated in {time.perf_counter() - start:.1f} s ({os.cpu_count()} processes)"
            )
        manifest = root / "manifest.jsonl"
        items = sum(1 for line in manifest.read_text().splitlines() if line.strip())
        print(f"cores: {os.cpu_count()}  items: {items}  workers: {args.workers}")
        print("median ms per item by stage (one process):")
        for media_type, figures in sorted(stage_timings(manifest, args.stage_items).items()):
            print(f"  {media_type:<6} {figures}")
        job = run_job(manifest, Path(scratch) / "warehouse", args.workers, args.model_dir)
        print(f"batch job: {job}")
        print(f"throughput: {items / job['wall_s']:.2f} items/s end to end (start-up included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
