"""A stack's Terraform state held by another run (a second deploy of the same stack): the next
command waits for the lock up to MLOPS_TF_LOCK_TIMEOUT, and past it fails with one clear message
naming who holds it and how to free it. The lock is held as Terraform's local backend holds it
(a POSIX lock on the state file, its Lock Info beside it)."""

from __future__ import annotations

import fcntl
import json
import threading
import time

import pytest

from mlops.terraform import LOCK_TIMEOUT_ENV, Terraform, TerraformError

pytestmark = pytest.mark.integration

LOCK_ID = "3f1c2a4e-0000-4b7d-9a0b-1c2d3e4f5a6b"


@pytest.fixture
def stack(tmp_path, tf_cli_config):
    (tmp_path / "state").mkdir()
    (tmp_path / "main.tf").write_text(
        'terraform {\n  backend "local" { path = "state/stack.tfstate" }\n}\n'
        'resource "terraform_data" "marker" { input = "v1" }\n')
    tf = Terraform(tmp_path, "stack", tf_cli_config, echo=False)
    tf.init()
    tf.apply()
    return tf


def hold_lock(workdir, release_after_s: float | None = None):
    """Lock the state as a running `terraform apply` of someone else would."""
    state = open(workdir / "state" / "stack.tfstate", "r+")  # noqa: SIM115 (held past this call)
    fcntl.lockf(state, fcntl.LOCK_EX | fcntl.LOCK_NB)
    (workdir / "state" / ".stack.tfstate.lock.info").write_text(json.dumps({
        "ID": LOCK_ID, "Operation": "OperationTypeApply", "Info": "", "Who": "alice@build-7",
        "Version": "1.11.4", "Created": "2026-12-02T09:15:00Z", "Path": "state/stack.tfstate"}))

    def release():
        (workdir / "state" / ".stack.tfstate.lock.info").unlink()
        fcntl.lockf(state, fcntl.LOCK_UN)
        state.close()

    if release_after_s is not None:
        threading.Timer(release_after_s, release).start()
    return release


def test_a_held_state_lock_fails_clearly_naming_its_holder(stack, monkeypatch):
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "2s")
    release = hold_lock(stack.workdir)
    try:
        started = time.monotonic()
        with pytest.raises(TerraformError) as failure:
            stack.apply()
        waited = time.monotonic() - started
    finally:
        release()
    message = str(failure.value)
    assert message.startswith("stack: `terraform apply` gave up after 2s (MLOPS_TF_LOCK_TIMEOUT)")
    assert "locked by another Terraform run (who alice@build-7, operation OperationTypeApply" in message
    assert f"`terraform force-unlock {LOCK_ID}` in {stack.workdir}" in message
    assert waited >= 2  # it waited for the lock before giving up
    assert "Error acquiring the state lock" in failure.value.output  # the whole output is kept


def test_a_second_deploy_waits_for_the_lock_and_then_applies(stack, monkeypatch):
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "60s")
    (stack.workdir / "main.tf").write_text((stack.workdir / "main.tf").read_text().replace('"v1"', '"v2"'))
    hold_lock(stack.workdir, release_after_s=2.0)
    started = time.monotonic()
    stack.apply()
    assert time.monotonic() - started >= 1.5
    state = json.loads((stack.workdir / "state" / "stack.tfstate").read_text())
    assert state["resources"][0]["instances"][0]["attributes"]["input"]["value"] == "v2"


def test_a_bad_lock_timeout_is_named(stack, monkeypatch):
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "soon")
    with pytest.raises(TerraformError, match="MLOPS_TF_LOCK_TIMEOUT='soon': not a duration"):
        stack.apply()
