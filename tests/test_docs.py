"""The docs' commands against the code: every `python -m <module>` and `deepfake <command>` line
in README.md and docs/ names a command that exists, with flags its parser takes, so no
example drifts from the code it documents."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from pathlib import Path

import pytest

from pipelines.options import beam_parser
from tools.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"(?:python -m ([a-z_][a-z_.]*)|deepfake ([a-z][a-z-]*))((?:[ \t]+(?:\\\n)?[^`\n|]*)?)")
# Modules that hand what they do not take to Beam.
BEAM_PASS_THROUGH = {"pipelines.batch", "pipelines.streaming", "pipelines.transparency"}


def code(text: str) -> list[str]:
    """The pages' code: fenced blocks and inline spans, continuation lines joined; a shell
    transcript's command (`$ ...`, shown to be refused) left out."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.DOTALL)
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    spans = re.findall(r"`([^`]+)`", prose.replace("\n", " "))
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line for line in [*lines, *spans] if not line.lstrip().startswith("$ ")]


def commands() -> list[tuple[str, str, str]]:
    """(page, module, the rest of the line) for each command the pages show."""
    found = []
    for page in PAGES:
        for match in (m for line in code(page.read_text()) for m in COMMAND.finditer(line)):
            module = match.group(1) or COMMANDS.get(match.group(2), (f"deepfake:{match.group(2)}",))[0]
            found.append((page.name, module, match.group(3) or ""))
    return found


def help_flags(module_name: str, subcommand: str | None) -> set[str]:
    module = importlib.import_module(module_name)
    run = getattr(module, "run", None) or getattr(module, "main", None)
    if run is None:  # a module that prints something when run, and takes no flags
        assert "__main__" in Path(module.__file__).read_text()
        return set()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        run([subcommand, "--help"] if subcommand else ["--help"])
    flags = set(re.findall(r"(--[a-z][\w-]*)", out.getvalue()))
    if module_name in BEAM_PASS_THROUGH:
        flags |= {f for action in beam_parser()._actions for f in action.option_strings}
    return flags


def test_the_pages_show_commands_at_all():
    shown = {module for _, module, _ in commands()}
    assert {"pipelines.batch", "pipelines.streaming", "tools.report", "training.train"} <= shown


@pytest.mark.parametrize("module", sorted({module for _, module, _ in commands()}))
def test_each_command_in_the_docs_exists_and_takes_the_flags_shown(module):
    if module in ("tools", "tools."):  # `python -m tools <command>` and `python -m tools.<name>`
        return
    assert not module.startswith("deepfake:"), f"no such command: deepfake {module.split(':')[1]}"
    shown = [(page, rest) for page, name, rest in commands() if name == module]
    for page, rest in shown:
        words = rest.split()
        subcommand = words[0] if words and re.fullmatch(r"[a-z]+", words[0]) else None
        taken = help_flags(module, subcommand)
        used = {re.sub(r"[=\]\[,.)`;:].*$", "", word) for word in words if word.startswith("--")}
        unknown = sorted(flag for flag in used if flag not in taken and flag != "--")
        assert unknown == [], f"{page}: python -m {module} {rest.strip()[:80]} -- no such flag {unknown}"


def test_the_pages_name_every_policy_condition():
    from enforcement.policy import CONDITIONS

    text = (ROOT / "docs" / "model-owners.md").read_text()
    assert [name for name in CONDITIONS if f"`{name}`" not in text] == []


def test_the_serving_signature_table_is_the_one_the_models_serve():
    from models.signature import SIGNATURES

    text = (ROOT / "docs" / "model-owners.md").read_text()
    for modality, specs in SIGNATURES.items():
        (row,) = re.findall(rf"^\| {modality} \| (.*?) \|", text, flags=re.MULTILINE)
        shown = {
            name: [int(n) for n in shape.split(",")] for name, shape in re.findall(r"`(\w+)` \w+ \[([\d, ]+)\]", row)
        }
        assert shown == {spec.name: list(spec.shape) for spec in specs}, modality
