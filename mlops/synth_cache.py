"""Skip a synth whose inputs have not changed since the last one into the same folder.

A synth costs ~20 s (the cdktf binding's import alone ~9 s) and every `deploy`, `plan`,
`destroy` and `local up|down` starts with one. The key is a hash of everything the synthesized
JSON is made from: the environment and project files, the sources of stacks/, lambdas/ and
pipelines/ (handlers zipped, step scripts bundled, the image tag), main.py, the lock (every
library version, the Lambda layers' content), the checkout's commit (recorded as lineage), the
set of environments, the output and state folders and the Python. Any change to any of them
synthesizes again; `mlops synth` always does.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from mlops.project import Project
from pipelines.bundle import REPO_ROOT, git_commit
from stacks.stack_info import StackInfo

MANIFEST = ".mlops-synth.json"
SOURCE_DIRS = ("stacks", "lambdas", "pipelines")
SOURCE_FILES = ("main.py", "requirements.lock")


def _files(root: Path) -> Iterable[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def inputs_key(project: Project, env_names: Iterable[str]) -> str:
    digest = hashlib.sha256()
    roots = [REPO_ROOT / d for d in SOURCE_DIRS] + [project.root / "environments"]
    for root in roots:
        for path in _files(root):
            digest.update(f"{path.relative_to(root.parent)}\0".encode() + path.read_bytes() + b"\0")
    for path in [REPO_ROOT / f for f in SOURCE_FILES] + [project.root / "cdktf.json"]:
        if path.is_file():
            digest.update(f"{path.name}\0".encode() + path.read_bytes() + b"\0")
    digest.update(json.dumps([sorted(env_names), str(project.outdir), str(project.state_dir),
                              sys.version, git_commit()]).encode())
    return digest.hexdigest()


def load(project: Project, key: str) -> list[StackInfo] | None:
    """The last synth's stacks if it had this key and every stack's JSON is still there."""
    try:
        manifest = json.loads((project.outdir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        return None
    try:
        infos = [StackInfo(s["name"], s["environment"], s["kind"], Path(s["dir"]))
                 for s in manifest["stacks"]]
    except (KeyError, TypeError):
        return None
    return infos if all((i.dir / "cdk.tf.json").is_file() for i in infos) else None


def save(project: Project, key: str, infos: list[StackInfo]) -> None:
    project.outdir.mkdir(parents=True, exist_ok=True)
    stacks = [{"name": i.name, "environment": i.environment, "kind": i.kind, "dir": str(i.dir)}
              for i in infos]
    (project.outdir / MANIFEST).write_text(json.dumps({"key": key, "stacks": stacks}, indent=2) + "\n")
