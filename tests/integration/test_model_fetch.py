"""The EKS pod's way to /opt/ml/model: the init container's command, exactly as rendered, run as a
process against S3 (a moto server), then the image's `serve` on what it extracted, spoken to as
the Deployment's probes and a client would."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pipelines.model_server.fetch_model import FetchError, extract
from stacks.config import load_environments
from stacks.k8s_manifests import render, serving_target
from stacks.project_config import load_projects
from tests.integration.test_model_server import serving

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "mlops-dev-artifacts-111111111111"
KEY = "demo/runs/exec-1/model/job-1/output/model.tar.gz"


def _init_container(model_dir: Path) -> list[str]:
    env, demo = load_environments(ROOT)["dev"], load_projects(ROOT)["demo"]["dev"]
    deployment = next(o for o in render(serving_target(env, demo, f"s3://{BUCKET}/{KEY}"))
                      if o["kind"] == "Deployment")
    (fetch,) = deployment["spec"]["template"]["spec"]["initContainers"]
    command = fetch["command"]
    assert command[-1] == "/opt/ml/model"
    return [sys.executable, *command[1:-1], str(model_dir)]  # the image's python, a local target


def test_the_init_container_fetches_the_model_the_server_then_serves(moto_server, demo_model, tmp_path):
    s3 = moto_server.client("s3", region="eu-west-1")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=demo_model.archive.read_bytes())
    model_dir = tmp_path / "opt-ml-model"
    # PYTHONPATH as the image sets it (/opt/mlops holds model_server/); credentials from the chain.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
           **moto_server.client_env(), "AWS_REGION": "eu-west-1", "PYTHONPATH": str(ROOT / "pipelines")}
    done = subprocess.run(_init_container(model_dir), env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert (model_dir / "model_meta.json").is_file()
    with serving(model_dir, tmp_path) as server:
        assert server.request("GET", "/ping")[0] == 200
        row = ",".join(["1.0"] * len(demo_model.features))
        status, _, body = server.invoke(row)
        assert status == 200 and body


def test_a_missing_object_fails_the_init_container_with_one_line(moto_server, tmp_path):
    s3 = moto_server.client("s3", region="eu-west-1")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
           **moto_server.client_env(), "AWS_REGION": "eu-west-1", "PYTHONPATH": str(ROOT / "pipelines")}
    done = subprocess.run(_init_container(tmp_path / "model"), env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot read s3://{BUCKET}/{KEY}:") and "NoSuchKey" in line


def _archive(name: str, data: bytes = b"x", link: str | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        if link is None:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        else:
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(("name", "link"), [("../escape.txt", None), ("model.joblib", "/etc/passwd"),
                                            ("model.joblib", "../../escape.txt")])
def test_an_archive_reaching_outside_the_model_dir_is_refused(tmp_path, name, link):
    with pytest.raises(FetchError, match="unsafe member"):
        extract(_archive(name, link=link), tmp_path / "model")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "model" / "model.joblib").exists()


def test_absolute_members_land_inside_the_model_dir(tmp_path):
    assert extract(_archive("/etc/escape.txt"), tmp_path / "model") == ["/etc/escape.txt"]
    assert (tmp_path / "model" / "etc" / "escape.txt").read_bytes() == b"x"  # the leading / dropped


def test_not_an_archive_is_refused(tmp_path):
    with pytest.raises(FetchError, match=r"not a readable \.tar\.gz"):
        extract(io.BytesIO(b"not a tarball"), tmp_path / "model")
    assert extract(_archive("model.joblib", b"abc"), tmp_path / "ok") == ["model.joblib"]
