"""Several batch jobs in one process, as a test session or an operator command runs them: the
wall time of each run of the same small job (models loaded once a process since 2026-12-07).

    python -m benchmarks.repeated_jobs --input MANIFEST.jsonl [--runs 3] [--warehouse DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time

from pipelines import batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.repeated_jobs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warehouse", default=None, help="Where each run writes (default: a temporary folder).")
    args = parser.parse_args(argv)
    warehouse = args.warehouse or tempfile.mkdtemp(prefix="repeated_jobs_")
    started = time.perf_counter()
    for run in range(args.runs):
        shutil.rmtree(warehouse, ignore_errors=True)
        began = time.perf_counter()
        if batch.run(["--input", args.input, "--warehouse", warehouse, "--min_cell_count", "1",
                      f"--runner={batch.LOCAL_RUNNER}"]) != 0:  # fmt: skip
            return 1
        print(f"run {run + 1}: {time.perf_counter() - began:.1f} s", file=sys.stderr)
    print(f"{args.runs} runs in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
