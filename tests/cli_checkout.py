"""A fresh checkout's configuration in a folder of its own, and the installed `mlops` run in it as
a person runs it (a subprocess): shared by the modules that drive the CLI end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MLOPS = str(Path(sys.executable).with_name("mlops"))


def mlops(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLOPS_ROOT": str(project)}
    proc = subprocess.run([MLOPS, *args], env=env, capture_output=True, text=True, timeout=1200)
    if check and proc.returncode != 0:
        pytest.fail(f"mlops {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


def fresh_checkout(root: Path) -> Path:
    """The environments and cdktf.json copied into root (its own .mlops and cdktf.out)."""
    shutil.copytree(ROOT / "environments", root / "environments")
    shutil.copy(ROOT / "cdktf.json", root / "cdktf.json")
    return root
