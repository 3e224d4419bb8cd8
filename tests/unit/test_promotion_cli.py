"""`mlops model promote`'s arguments: a pair the configuration does not promote along, a bad
version or an unknown environment is refused (exit 2) before anything is read or written."""

from __future__ import annotations

import pytest

from mlops.cli import main


@pytest.mark.parametrize(("argv", "message"), [
    (["--from", "dev", "--to", "prod"], "--from dev: prod promotes from staging"),
    (["--from", "staging", "--to", "dev"],
     "--from staging: dev promotes from nowhere (no promotion setting)"),
    (["--from", "staging", "--to", "prod", "--version", "0"], "--version 0: versions start at 1"),
    (["--from", "qa", "--to", "prod"], "environments/qa.yaml: (file): no such environment"),
    (["--from", "staging", "--to", "prod", "--project", "nosuch"], "no such project; known: demo"),
])
def test_bad_arguments_are_refused_before_any_call(argv, message, capsys):
    project = [] if "--project" in argv else ["--project", "demo"]
    assert main(["model", "promote", *project, *argv]) == 2
    assert message in capsys.readouterr().err


def test_version_must_be_a_number(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["model", "promote", "--project", "demo", "--from", "staging", "--to", "prod", "--version", "x"])
    assert exit_.value.code == 2
    assert "invalid int value: 'x'" in capsys.readouterr().err
