"""The local AWS killed in the middle of an apply (a crash, an OOM kill, a laptop lid): `local up`
fails saying which stack broke, and the next `local up` starts a new local AWS and converges,
with nothing left over from the half-applied state. A checkout with the platform stack only
keeps it to one apply of each."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local_aws.lifecycle import LocalAws

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MLOPS = str(Path(sys.executable).with_name("mlops"))


def test_a_local_aws_killed_mid_apply_then_local_up_converges(tmp_path):
    root = tmp_path / "checkout"
    shutil.copytree(ROOT / "environments", root / "environments")
    for project in (root / "environments" / "projects").glob("*.yaml"):
        project.unlink()
    shutil.copy(ROOT / "cdktf.json", root / "cdktf.json")
    env = {**os.environ, "MLOPS_ROOT": str(root)}
    local = LocalAws(root / ".mlops" / "local")
    log = root / ".mlops" / "logs" / "platform-local.log"
    first = subprocess.Popen([MLOPS, "local", "up", "--json"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600  # synth and init first: slow on a loaded 2-core machine
        while not (log.is_file() and "Creation complete" in log.read_text()):
            assert first.poll() is None and time.monotonic() < deadline, "the apply never started creating"
            time.sleep(0.5)
        killed = local.record()
        os.kill(killed.pid, signal.SIGKILL)
        _, stderr = first.communicate(timeout=900)
        assert first.returncode == 1, stderr[-3000:]
        assert "platform-local" in stderr and "Traceback" not in stderr, stderr[-3000:]

        second = subprocess.run([MLOPS, "local", "up", "--json"], env=env, capture_output=True, text=True,
                                timeout=900)
        assert second.returncode == 0, second.stderr[-4000:]
        assert "started the local AWS" in second.stderr  # a new, empty one: the old state was dropped
        up = json.loads(second.stdout)
        assert up["pid"] != killed.pid and [s["name"] for s in up["stacks"]] == ["platform-local"]
        plan = subprocess.run([MLOPS, "plan", "local", "--detailed-exitcode", "--json"], env=env,
                              capture_output=True, text=True, timeout=600)
        assert plan.returncode == 0 and json.loads(plan.stdout)["changes"] is False, plan.stderr[-3000:]
    finally:
        if first.poll() is None:  # the test failed before the kill: nothing of it may stay up
            first.terminate()
            first.communicate(timeout=120)
        local.stop()
