"""`mlops rbac check` (mlops/rbac.py): what a call's answer means, what the check refuses to do,
and the README's table being the one the check expects. The calls themselves run in
tests/e2e/test_cli.py against the local AWS with IAM enforced."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from mlops import rbac
from mlops.project import Project

README = Path(__file__).resolve().parents[2] / "README.md"


def failing(code: str):
    def probe(*args):
        raise ClientError({"Error": {"Code": code, "Message": "no"}}, "Op")
    return probe


def judge(probe, admin=None):
    return rbac.outcome(probe, None, admin, None, "data_scientist")


def test_only_an_access_denied_answer_counts_as_denied():
    for code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        assert judge(failing(code)) == ("denied", code)
    # Authorized, then refused for something else: the permission is there.
    for code in ("ValidationException", "ResourceNotFoundException", "NoSuchKey", "ModelError"):
        assert judge(failing(code)) == ("allowed", code)
    assert judge(lambda *a: None) == ("allowed", "ok")


def test_what_an_allowed_probe_changed_is_undone_and_a_failed_undo_is_an_error():
    undone = []

    def changes(me, target, persona, undo):
        undo(lambda admin: undone.append(admin))

    assert judge(changes, admin="deployer") == ("allowed", "ok") and undone == ["deployer"]

    def cannot_undo(me, target, persona, undo):
        undo(lambda admin: failing("NoSuchEntity")())

    with pytest.raises(rbac.RbacError, match="data_scientist: could not undo what the probe changed"):
        judge(cannot_undo)


def test_every_row_of_the_matrix_has_an_expectation_and_the_readme_shows_it():
    assert [row for row, _, _ in rbac.MATRIX] == list(rbac.EXPECTED)
    assert all(set(allowed) <= set(rbac.PERSONAS) for allowed in rbac.EXPECTED.values())
    assert rbac.expected_markdown() in README.read_text()


class NotEnforcing:
    def iam_enforced(self):
        return False


def test_the_check_refuses_a_local_aws_that_enforces_nothing(tmp_path):
    with pytest.raises(rbac.RbacError, match=r"does not enforce IAM.*--enforce-iam"):
        rbac.run_check(NotEnforcing(), None, "demo", tmp_path)


def test_the_check_runs_against_the_local_aws_only(capsys):
    args = argparse.Namespace(env="dev", project=None, json=True)
    assert rbac.run_rbac_command(args, Project(Path(__file__).resolve().parents[2])) == 2
    assert "--env dev" in capsys.readouterr().err


def test_the_table_marks_what_was_not_expected():
    rows = [{"persona": p, "check": c, "got": "denied", "expected": "denied", "ok": True}
            for p in rbac.PERSONAS for c, _, _ in rbac.MATRIX]
    rows[0] = {**rows[0], "got": "allowed", "ok": False}
    text = rbac.table(rows)
    assert "allowed (expected denied)" in text and text.count("expected") == 1
