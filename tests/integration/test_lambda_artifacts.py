"""Every function as Lambda would run it: its synthesized zip and its layers unpacked into an empty
folder, the handler imported by the runtime's Python (`python3.12 -I -S`: no site-packages, no
environment, nothing of this checkout) with the stack's environment variables, and only the
runtime's own boto3 beside them. Every module that loads must come from there or the standard
library."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from local_aws.lambda_code import runtime_python, runtime_sdk
from stacks.layers import PYTHON_VERSION

pytestmark = pytest.mark.integration

PROBE = """
import importlib, json, os, sys
task = json.loads(sys.argv[1])
sys.path[:0] = task["path"]
importlib.import_module(task["module"])
print(json.dumps(sorted({m: getattr(mod, "__file__", None) or "" for m, mod in sys.modules.items()}.items())))
"""


@pytest.fixture(scope="module")
def runtime_site(tmp_path_factory) -> Path:
    """Stand-in for the runtime's bundled SDK (the local execution environments' own)."""
    return runtime_sdk(tmp_path_factory.mktemp("runtime-sdk"))


def resolved(value: str) -> str:
    """A Terraform reference (known only after apply) stood in for by a value of its shape."""
    def stand_in(match: re.Match) -> str:
        ref = match.group(1)
        kind, name, attribute = [*ref.split("."), "", ""][:3]
        if attribute == "arn":
            service = kind.removeprefix("aws_").split("_")[0]
            return f"arn:aws:{service}:eu-west-1:111111111111:{name.replace('_', '-')}"
        return name.replace("_", "-")[:60]
    return re.sub(r"\$\{([^}]*)\}", stand_in, value)


def functions(stack: dict) -> list[tuple[str, dict]]:
    return sorted(stack["resource"]["aws_lambda_function"].items())


def uploaded_zip(stack: dict, stack_dir: Path, s3_key: str) -> Path:
    """The zip in the stack folder that code created from S3 comes from: the uploaded object
    itself, or, with code signing on, the object the signing job signed."""
    kind, name = s3_key.removeprefix("${").split(".")[:2]
    if kind == "aws_signer_signing_job":
        job = stack["resource"][kind][name]
        kind, name = job["source"]["s3"]["version"].removeprefix("${").split(".")[:2]
    assert kind == "aws_s3_object", s3_key
    return stack_dir / stack["resource"][kind][name]["source"]


def function_zip(stack: dict, stack_dir: Path, function: dict) -> Path:
    if "filename" in function:
        return stack_dir / function["filename"]
    return uploaded_zip(stack, stack_dir, function["s3_key"])


def layer_zips(stack: dict, stack_dir: Path, function: dict) -> list[Path]:
    versions = stack["resource"]["aws_lambda_layer_version"]
    return [uploaded_zip(stack, stack_dir, versions[ref.split(".")[1]]["s3_key"])
            for ref in function["layers"]]


@pytest.mark.parametrize("stack_name", ["project-demo-dev", "project-demo-local"])
def test_every_function_imports_from_its_zip_and_layers_alone(synth_all, stack_name, runtime_site,
                                                             tmp_path):
    python = runtime_python(PYTHON_VERSION)
    assert python, (f"no Python {PYTHON_VERSION} (the Lambda runtime's) on this machine: the functions' "
                    "packages cannot be imported as Lambda would")
    stack_dir = synth_all.stacks[stack_name]
    stack = synth_all.json(stack_name)
    checked = []
    for name, function in functions(stack):
        root = tmp_path / name
        task_dir, layer_dir = root / "task", root / "opt"
        with zipfile.ZipFile(function_zip(stack, stack_dir, function)) as code:
            code.extractall(task_dir)  # /var/task
        for layer in layer_zips(stack, stack_dir, function):
            with zipfile.ZipFile(layer) as archive:
                archive.extractall(layer_dir)  # /opt
        module = function["handler"].rsplit(".", 1)[0]
        variables = {k: resolved(v) for k, v in function["environment"]["variables"].items()}
        task = {"module": module, "path": [str(task_dir), str(layer_dir / "python"), str(runtime_site)]}
        proc = subprocess.run([python, "-I", "-S", "-c", PROBE, json.dumps(task)], cwd=root,
                              env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "eu-west-1",
                                   "AWS_REGION": "eu-west-1", **variables},
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{name}: {function['handler']} does not import:\n{proc.stderr[-3000:]}"
        stdlib = subprocess.run(
            [python, "-I", "-S", "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
            capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        allowed = (str(task_dir), str(layer_dir), str(runtime_site), stdlib)
        foreign = {m: f for m, f in json.loads(proc.stdout) if f and not f.startswith(allowed)}
        assert not foreign, f"{name}: modules from outside the function's zip and layers: {foreign}"
        repo = str(Path(__file__).resolve().parents[2])
        assert not [f for _, f in json.loads(proc.stdout) if f.startswith(repo)], name
        checked.append(name)
        shutil.rmtree(root)
    assert len(checked) == 6 and any("drift" in c for c in checked)
