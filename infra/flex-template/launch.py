"""Flex Template entry point of the batch job: `pipelines.batch.run()` on the template's parameters.

Dataflow's launcher passes every parameter as `--name=value`, the job's switches included
(`--features_only=true`), which take no value on the command line: `true` becomes the bare
switch and `false` leaves it out. Everything else passes through unchanged, and the job runs on
Dataflow unless a runner is named (the batch job's own default is a local runner).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence

from pipelines.options import job_parser as batch_parser

DATAFLOW_RUNNER = "DataflowRunner"


def job_parser() -> argparse.ArgumentParser:
    """The batch job's own flags (Beam's --runner, --temp_location, ... are not among them)."""
    return batch_parser("batch")


def is_switch(action: argparse.Action) -> bool:
    """A flag given without a value (store_true)."""
    return action.nargs == 0


def switches(parser: argparse.ArgumentParser) -> frozenset[str]:
    return frozenset(flag for action in parser._actions if is_switch(action) for flag in action.option_strings)


def command_line(parameters: Sequence[str], switch_flags: Iterable[str]) -> list[str]:
    """The template's `--name=value` parameters as the job's command line, on Dataflow."""
    switch_flags = frozenset(switch_flags)
    argv = []
    for argument in parameters:
        flag, has_value, value = argument.partition("=")
        if has_value and flag in switch_flags and value.lower() in ("true", "false"):
            if value.lower() == "true":
                argv.append(flag)
            continue
        argv.append(argument)
    if not any(argument.split("=", 1)[0] == "--runner" for argument in argv):
        argv.append(f"--runner={DATAFLOW_RUNNER}")
    return argv


def main() -> int:
    from pipelines.batch import run

    return run(command_line(sys.argv[1:], switches(job_parser())))


if __name__ == "__main__":
    sys.exit(main())
