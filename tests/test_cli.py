"""One command for the jobs and the tools: `deepfake <command>` (`python -m tools`)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def deepfake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_a_module_that_runs_on_its_own_too(command):
    module = importlib.import_module(COMMANDS[command][0])
    assert callable(getattr(module, "run", None) or getattr(module, "main", None))
    assert (ROOT / Path(*module.__name__.split("."))).with_suffix(".py").exists()  # python -m <module> works


def test_help_lists_every_command_and_an_unknown_one_is_refused_with_the_nearest():
    listed = re.findall(r"^  (\S+) ", deepfake("--help").stdout, flags=re.MULTILINE)
    assert listed == list(COMMANDS)
    wrong = deepfake("sumbit-statements")
    assert wrong.returncode == 2
    assert (
        wrong.stderr.strip() == "deepfake: error: unknown command 'sumbit-statements'; did you mean submit-statements?"
    )


def test_a_command_takes_its_module_flags_strictly():
    refused = deepfake("batch", "--input", "m.jsonl", "--warehouse", "w", "--polciy", "p")
    assert refused.returncode == 2
    assert refused.stderr.strip().endswith("unrecognized flag --polciy; did you mean --policy?")
    assert deepfake("report", "--warehouse", "w", "--out", "o", "--min_cell", "1").returncode == 2  # no abbreviations


def test_setup_installs_the_command():
    assert '"deepfake = tools.cli:main"' in (ROOT / "setup.py").read_text()
