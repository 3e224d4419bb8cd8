"""The commands a person runs, as a person runs them (subprocesses of the installed CLIs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.local_aws import LocalAws, _is_our_moto

ROOT = Path(__file__).resolve().parents[2]
MLOPS = str(Path(sys.executable).with_name("mlops"))

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path) -> Path:
    """A fresh checkout's configuration in a folder of its own (its own .mlops and cdktf.out)."""
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    shutil.copy(ROOT / "cdktf.json", tmp_path / "cdktf.json")
    yield tmp_path
    # Whatever happened, the server this test's CLI started is stopped (by its recorded pid).
    LocalAws(tmp_path / ".mlops" / "local").stop()


def mlops(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLOPS_ROOT": str(project)}
    proc = subprocess.run([MLOPS, *args], env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        pytest.fail(f"mlops {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


def test_local_up_status_converge_down(project):
    up = mlops(project, "local", "up", "--json")
    result = json.loads(up.stdout)  # stdout is only the JSON; progress went to stderr
    assert result["endpoint_url"].startswith("http://127.0.0.1:")
    assert "Apply complete! Resources: 63 added" in up.stderr
    (stack,) = result["stacks"]
    assert stack["name"] == "platform-local" and stack["resources"] == 63
    assert stack["outputs"]["datasets_bucket"] == "mlops-local-datasets-123456789012"

    status = json.loads(mlops(project, "local", "status", "--json").stdout)
    assert status["endpoint_url"] == result["endpoint_url"]
    assert status["region"] == "us-east-1"
    assert status["stacks"] == [{"name": "platform-local", "dir": stack["dir"]}]
    pid = status["pid"]
    assert _is_our_moto(pid)

    # A person's own `terraform plan` in the stack folder sees no changes.
    plan = subprocess.run(
        ["terraform", "plan", "-detailed-exitcode", "-no-color", "-input=false"],
        cwd=stack["dir"], capture_output=True, text=True, timeout=600,
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr

    again = mlops(project, "local", "up")
    assert "using the local AWS" in again.stderr
    assert "Apply complete! Resources: 0 added, 0 changed, 0 destroyed." in again.stderr

    down = mlops(project, "local", "down", "--json")
    assert json.loads(down.stdout) == {"destroyed": ["platform-local"], "server_stopped": True}
    assert not _is_our_moto(pid)
    after = json.loads(mlops(project, "local", "status", "--json").stdout)
    assert after["running"] is False and after["stacks"] == []


def test_npm_cdktf_synth_matches_mlops_synth(synth_all, tmp_path):
    """`npx cdktf synth` (the npm CLI reading cdktf.json) writes the same stacks."""
    npx = shutil.which("npx")
    assert npx, "npx (Node.js) is needed for the cdktf CLI"
    out = tmp_path / "npm-out"
    proc = subprocess.run(
        [npx, "--no-install", "cdktf", "synth", "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "CHECKPOINT_DISABLE": "1", "CI": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in (out / "stacks").iterdir()) == sorted(synth_all.stacks)
    for name in ("platform-prod", "platform-local"):
        ours = synth_all.json(name)
        theirs = json.loads((out / "stacks" / name / "cdk.tf.json").read_text())
        assert theirs["resource"] == ours["resource"], name
        assert theirs["provider"] == ours["provider"], name
