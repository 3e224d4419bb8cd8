"""What a local Lambda execution environment runs: the code Terraform deployed, not this checkout.

For each function the control plane invokes, `DeployedCode` asks the local Lambda for the
function's deployment package as AWS hands it out (GetFunction -> `Code.Location`, a URL valid
for a few minutes) and for each of its layers (GetLayerVersion -> `Content.Location`),
downloads them, checks each against its `CodeSha256` and unpacks it once per digest under
`<state dir>/lambda/`: the package as Lambda's /var/task, the layers as its /opt. A change that is
not deployed is not run; a layer the function names but the account lacks fails the invocation,
as a cold start in AWS would.

The interpreter is the function's runtime (`python3.12` for `Runtime: python3.12`): pyenv's, one
uv knows, or one on PATH. It runs with `-I -S` (no site-packages, nothing of the environment's
PYTHON* settings) and a path of the package, the layers' `python/` folders and a stand-in for
the SDK the Lambda runtime bundles (boto3 and its dependencies, linked from this Python's
site-packages: pure Python). Where no interpreter of that version exists, the function runs on
this Python (`-S`), its package first, and this Python's site-packages stand in for the layers,
whose compiled wheels are built for the runtime's version (the same pinned versions, from
requirements.lock); the log says so.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import io
import os
import shutil
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

# What the Lambda Python runtime brings besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


class CodeUnavailable(RuntimeError):
    """The function's package or one of its layers could not be had as deployed."""


@dataclass(frozen=True)
class Deployment:
    """One function's code as an execution environment sees it."""

    python: str  # the interpreter
    flags: tuple[str, ...]  # -I -S for the runtime's own interpreter
    path: tuple[str, ...]  # sys.path before the standard library
    task_root: str  # LAMBDA_TASK_ROOT
    note: str = ""  # what differs from AWS, for the function's log


@cache
def runtime_python(version: str) -> str | None:
    """A CPython of `version` (e.g. "3.12"): pyenv's, one uv knows, or one on PATH."""
    found = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")),
                   key=lambda path: [int(p) if p.isdigit() else -1
                                     for p in Path(path).parents[1].name.split(".")])
    if found:
        return found[-1]
    uv = Path(sys.executable).with_name("uv")
    if uv.exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            proc = subprocess.run([str(uv), "python", "find", version], capture_output=True, text=True,
                                  timeout=60, check=False)
            if proc.returncode == 0 and proc.stdout.strip():
                return proc.stdout.strip()
    return shutil.which(f"python{version}")


def runtime_sdk(folder: Path) -> Path:
    """Stand-in for the runtime's bundled SDK: boto3 and what it needs, linked from this Python."""
    import boto3

    site = Path(boto3.__file__).parents[1]
    folder.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        entry = site / name if (site / name).is_dir() else site / f"{name}.py"
        link = folder / entry.name
        if link.is_symlink() and os.readlink(link) == str(entry):
            continue
        # Missing, or left dangling by a venv rebuilt elsewhere: replaced atomically (another
        # process may do the same at once).
        staged = folder / f".{entry.name}.{os.getpid()}"
        staged.unlink(missing_ok=True)
        staged.symlink_to(entry)
        os.replace(staged, link)
    return folder


def code_sha256(data: bytes) -> str:
    """Lambda's CodeSha256: the base64 of the package's SHA-256."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class DeployedCode:
    """Downloads, checks and unpacks functions' packages and layers; once per digest."""

    def __init__(self, lambda_client: Callable[[str], Any], cache_dir: Path, ca_bundle: str | None = None):
        # lambda_client(account): a Lambda client acting in the account (a function's package and
        # layers are asked of the function's own account, as its execution environment would)
        self.lambda_client, self.cache_dir = lambda_client, cache_dir
        self.tls = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None
        self._known: dict[tuple[str, ...], Deployment] = {}

    def deployment(self, configuration: dict[str, Any]) -> Deployment:
        """The function's code as deployed: asked of Lambda once per package and layer versions."""
        key = (configuration["FunctionArn"], configuration.get("CodeSha256", ""),
               *(layer["Arn"] for layer in configuration.get("Layers") or []))
        if key not in self._known:
            self._known[key] = self._fetch(configuration)
        return self._known[key]

    def _fetch(self, configuration: dict[str, Any]) -> Deployment:
        name = configuration["FunctionName"]
        lam = self.lambda_client(configuration["FunctionArn"].split(":")[4])
        got = lam.get_function(FunctionName=configuration["FunctionArn"])
        code = got.get("Code") or {}
        if not code.get("Location"):
            raise CodeUnavailable(f"{name}: GetFunction names no package location ({code or 'no Code'})")
        task = self._unpacked(code["Location"], got["Configuration"]["CodeSha256"], f"function {name}")
        layers = []
        for layer in configuration.get("Layers") or []:
            layer_arn, number = layer["Arn"].rsplit(":", 1)  # ...:layer:<name>:<version>
            version = lam.get_layer_version(LayerName=layer_arn, VersionNumber=int(number))
            content = version.get("Content") or {}
            if not content.get("Location"):
                raise CodeUnavailable(f"{name}: layer {layer['Arn']} has no content location")
            layers.append(self._unpacked(content["Location"], content["CodeSha256"], f"layer {layer['Arn']}"))
        version = (configuration.get("Runtime") or "").removeprefix("python")
        python = runtime_python(version) if version else None
        if python is not None:
            sdk = runtime_sdk(self.cache_dir / "runtime-sdk")
            path = (str(task), *(str(d / "python") for d in layers), str(sdk))
            return Deployment(python, ("-I", "-S"), path, str(task))
        site = sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]
        return Deployment(sys.executable, ("-S",), (str(task), *dict.fromkeys(site)), str(task),
                          note=f"no Python {version or '?'} (the function's runtime) on this machine: it "
                               f"runs on Python {sys.version_info.major}.{sys.version_info.minor}, whose "
                               "installed packages stand in for its layers")

    def _unpacked(self, location: str, sha256: str, what: str) -> Path:
        folder = self.cache_dir / "code" / hashlib.sha256(sha256.encode()).hexdigest()[:24]
        if folder.is_dir():
            return folder
        try:
            with urllib.request.urlopen(location, timeout=120, context=self.tls) as reply:
                data = reply.read()
        except OSError as exc:
            raise CodeUnavailable(f"{what}: its package could not be downloaded from {location}: "
                                  f"{exc}") from exc
        if code_sha256(data) != sha256:
            raise CodeUnavailable(f"{what}: the downloaded package's SHA-256 is {code_sha256(data)}, "
                                  f"not the CodeSha256 {sha256} Lambda reports")
        self.cache_dir.joinpath("code").mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.cache_dir / "code", prefix=".unpacking-"))
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                archive.extractall(staging)
            with contextlib.suppress(OSError):  # another process unpacked the same digest first
                staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if not folder.is_dir():
            raise CodeUnavailable(f"{what}: could not unpack its package into {folder}")
        return folder
