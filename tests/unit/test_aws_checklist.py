"""The README's AWS checklist names only commands and flags the CLI has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mlops.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def checklist_commands() -> list[list[str]]:
    text = README.read_text()
    section = text[text.index("## Deploying to AWS"):text.index("## CI/CD")]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)  # the checklist, promotion
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("mlops ")]


def test_the_checklist_covers_bootstrap_images_deploy_first_run_and_plan():
    commands = checklist_commands()
    for step in (["validate"], ["bootstrap", "dev"], ["layers", "build"], ["deploy", "dev"],
                 ["image", "build"], ["image", "push"], ["pipeline", "run"], ["plan", "dev"],
                 ["model", "promote"]):
        assert any(c[:len(step)] == step for c in commands), step


@pytest.mark.parametrize("args", checklist_commands(), ids=" ".join)
def test_every_checklist_command_parses(args):
    parsed = build_parser().parse_args(args)
    assert callable(parsed.func)
