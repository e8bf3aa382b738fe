"""Writes the Flex Template metadata of the batch job from its own flags, so the template's
parameters are the job's options one for one and never drift from them:

    python infra/flex-template/generate_metadata.py > infra/flex-template/metadata.json

One parameter per flag of the batch job (`pipelines.options.JOB_FLAGS`): its help as help text (defaults filled in), a
regex wherever the flag takes choices, a number or a switch, and required where the job ends a
run without it. Beam's own options (--runner, --temp_location, ...) are the launcher's, not
parameters of the template.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from launch import is_switch, job_parser  # beside this script, which Python puts first on sys.path

import pipelines.batch
from pipelines.options import flag_actions

TEMPLATE_NAME = "deepfake-defense-batch"
# Flags `pipelines.launch.check_flags` refuses a run without.
REQUIRED = frozenset({"warehouse"})
NUMBER_PATTERNS = {
    int: r"^-?[0-9]+$",
    float: r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$",
}
SWITCH_PATTERN = "^(true|false)$"


def choices_pattern(choices: Any) -> str:
    return "^(" + "|".join(re.escape(str(choice)) for choice in choices) + ")$"


def help_text(action: argparse.Action, prog: str) -> str:
    """The flag's help as `--help` prints it (%(default)s and the like filled in)."""
    if not action.help:
        return label(action)
    params = dict(vars(action), prog=prog)
    if action.choices is not None:
        params["choices"] = ", ".join(str(choice) for choice in action.choices)
    return action.help % params


def label(action: argparse.Action) -> str:
    return action.dest.replace("_", " ").capitalize()


def parameter(action: argparse.Action, group: str, prog: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": action.dest,
        "label": label(action),
        "helpText": help_text(action, prog),
        "groupName": group,
        "isOptional": action.dest not in REQUIRED,
        "paramType": "TEXT",
    }
    if is_switch(action):
        entry["helpText"] += " (true or false)"
        entry["regexes"] = [SWITCH_PATTERN]
    elif action.choices is not None:
        entry["regexes"] = [choices_pattern(action.choices)]
    elif action.type in NUMBER_PATTERNS:
        entry["regexes"] = [NUMBER_PATTERNS[action.type]]
    return entry


def metadata() -> dict[str, Any]:
    parser = job_parser()
    flags = flag_actions(parser)
    parameters = [
        parameter(action, group.title, parser.prog)
        for group in parser._action_groups
        for action in group._group_actions
        if action in flags
    ]
    return {
        "name": TEMPLATE_NAME,
        "description": pipelines.batch.__doc__.strip().splitlines()[0],
        "streaming": False,
        "parameters": parameters,
    }


def main() -> int:
    print(json.dumps(metadata(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
