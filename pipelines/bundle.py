"""The files a pipeline run needs in S3: step scripts, the training source tarball, config, schema.

The bundle is content-addressed: its S3 prefix carries a digest of every file in it, so a changed
script or threshold lands under a new prefix and changes the pipeline definition, while an old
execution keeps reading exactly the code it started with. Terraform uploads the bundle (synth stays
offline: the SDK never uploads anything); the local runner reads it back from the local S3.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STEPS_DIR = Path(__file__).resolve().parent / "steps"
REPO_ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """The checkout's commit, recorded as lineage on every model the pipeline registers."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"

CODE = "code"  # the step scripts, one object each (processing jobs download the prefix)
SOURCEDIR = "sourcedir.tar.gz"  # the same scripts for the training job (`sagemaker_submit_directory`)
CONFIG = "config/project.json"
SCHEMA = "schema/schema.json"


@dataclass(frozen=True)
class Bundle:
    files: dict[str, bytes]  # key relative to the bundle prefix -> content
    digest: str

    def prefix(self, project: str) -> str:
        return f"{project}/pipeline/{self.digest[:16]}"


# The modules of lambdas/shared the steps import (capture and ground-truth parsing: one reader
# for the quality check and the dataset version step; what an endpoint serves), under their package paths.
# The drift batch job (drift_batch.py) runs the drift Lambda's library itself.
SHARED_MODULES = ("lambdas/__init__.py", "lambdas/shared/__init__.py", "lambdas/shared/capture_files.py",
                  "lambdas/shared/quality/__init__.py", "lambdas/shared/quality/labels.py",
                  "lambdas/shared/served_model.py", "lambdas/shared/checks.py", "lambdas/shared/reports.py",
                  "lambdas/shared/scheduled_window.py",
                  *sorted(p.relative_to(REPO_ROOT).as_posix()
                          for p in (REPO_ROOT / "lambdas/shared/drift").glob("*.py")))


def step_scripts() -> dict[str, bytes]:
    """Every module of pipelines/steps/ (the scripts import their siblings by plain name), and
    the shared modules they import, beside them (the scripts' folder is on their sys.path)."""
    scripts = {p.name: p.read_bytes() for p in sorted(STEPS_DIR.glob("*.py")) if p.name != "__init__.py"}
    return {**scripts, **{name: (REPO_ROOT / name).read_bytes() for name in SHARED_MODULES}}


def reproducible_tarball(files: dict[str, bytes]) -> bytes:
    """A .tar.gz whose bytes depend only on the file names and contents (no times, owners)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(files[name]))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def canonical_json(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=2) + "\n").encode()


def build_bundle(project_settings: dict[str, Any], schema_path: Path) -> Bundle:
    scripts = step_scripts()
    if not scripts:
        raise FileNotFoundError(f"no step scripts in {STEPS_DIR}")
    files = {f"{CODE}/{name}": content for name, content in scripts.items()}
    files[SOURCEDIR] = reproducible_tarball(scripts)
    files[CONFIG] = canonical_json(project_settings)
    files[SCHEMA] = schema_path.read_bytes()
    digest = hashlib.sha256()
    for key in sorted(files):
        digest.update(key.encode() + b"\0" + hashlib.sha256(files[key]).digest())
    return Bundle(files, digest.hexdigest())
