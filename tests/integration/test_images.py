"""`mlops image build|push` and the image check of `mlops deploy`, with a stand-in docker (these
machines have the docker client but no engine) and the moto server's ECR."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.images import ImageError, build, find_builder, push
from stacks.images import BUILD_CONTEXT, DOCKERFILE, environment_images, image_tag

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MLOPS = str(Path(sys.executable).with_name("mlops"))

# A docker that records every call (argv, stdin) and keeps the tags it "built".
STANDIN = f"""#!{sys.executable}
import json, os, sys
calls = os.environ["STANDIN_CALLS"]
args = sys.argv[1:]
stdin = sys.stdin.read() if "--password-stdin" in args else None
with open(calls, "a") as f:
    f.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
if args[0] == "info" and os.environ.get("STANDIN_NO_ENGINE"):
    print("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.", file=sys.stderr)
    sys.exit(1)
if args[:2] == ["image", "inspect"]:
    built = [json.loads(l)["args"] for l in open(calls)]
    sys.exit(0 if any(a[0] == "build" and args[2] in a for a in built) else 1)
if args[0] == "push" and os.environ.get("AWS_ENDPOINT_URL"):
    # What a push leaves behind: the tag in the (local AWS's) repository.
    import boto3
    registry, _, name = args[1].partition("/")
    repository, _, tag = name.partition(":")
    boto3.client("ecr", region_name=registry.split(".")[3]).put_image(
        repositoryName=repository, imageTag=tag, imageManifest=json.dumps({{
            "schemaVersion": 2, "layers": [],
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}}))
"""


@pytest.fixture
def docker(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker"
    script.write_text(STANDIN)
    script.chmod(0o755)
    monkeypatch.setenv("STANDIN_CALLS", str(tmp_path / "calls.jsonl"))
    return script


def calls(tmp_path: Path) -> list[dict]:
    path = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def only(docker: Path):
    return lambda name: str(docker) if name == "docker" else None


def test_build_makes_each_stage_under_the_tag_the_project_stack_references(
        environments, synth_all, docker, tmp_path):
    env = environments["dev"]
    builder = find_builder(tmp_path / "logs", which=only(docker))
    built = build(env, builder)
    builds = [c["args"] for c in calls(tmp_path) if c["args"][0] == "build"]
    images = environment_images(env)
    assert builds == [["build", "-f", str(DOCKERFILE), "--target", i.target, "-t", i.uri, str(BUILD_CONTEXT)]
                      for i in images]
    assert [b["uri"] for b in built] == [i.uri for i in images]
    # The tag is the one every pipeline step and model of the synthesized stack names.
    stack = json.dumps(synth_all.json("project-demo-dev"))
    for image in images:
        assert image.tag == image_tag() and image.uri in stack, image.uri
    assert "$ docker build" in (tmp_path / "logs" / "image-training.log").read_text()


def test_without_an_engine_the_command_says_so_in_one_line(docker, tmp_path):
    project = tmp_path / "checkout"
    shutil.copytree(ROOT / "environments", project / "environments")
    env = {**os.environ, "MLOPS_ROOT": str(project), "STANDIN_NO_ENGINE": "1",
           "PATH": f"{docker.parent}:/usr/bin:/bin"}
    proc = subprocess.run([MLOPS, "image", "build", "--env", "dev"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith("error: no OCI builder can build the images here: docker is installed but "
                           "its engine does not answer (Cannot connect to the Docker daemon")
    assert "no podman on PATH" in line and "Traceback" not in proc.stderr


def test_push_logs_in_to_ecr_and_pushes_only_the_tags_it_lacks(environments, moto_server, docker,
                                                              tmp_path):
    env = environments["dev"]
    ecr = moto_server.client("ecr", env.region)
    training, inference = environment_images(env)
    for image in (training, inference):
        ecr.create_repository(repositoryName=image.repository, imageTagMutability="IMMUTABLE")
    ecr.put_image(repositoryName=training.repository, imageTag=training.tag,
                  imageManifest=json.dumps({
                      "schemaVersion": 2, "layers": [],
                      "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}))
    builder = find_builder(tmp_path / "logs", which=only(docker))

    with pytest.raises(ImageError, match=r"is not built on this machine: run `mlops image build --env dev`"):
        push(env, builder, ecr)

    build(env, builder)
    pushed = push(env, builder, ecr)
    assert [(p["purpose"], p["pushed"]) for p in pushed] == [("training", False), ("inference", True)]
    done = [c for c in calls(tmp_path) if c["args"][0] in ("login", "push")]
    login, push_call = done
    assert login["args"] == ["login", "--username", "AWS", "--password-stdin", inference.registry]
    assert login["stdin"]  # the password went by stdin, never on the command line
    assert login["stdin"] not in " ".join(login["args"])
    assert push_call["args"] == ["push", inference.uri]


def test_deploy_refuses_before_terraform_while_ecr_lacks_the_tag(environments, moto_server, tmp_path):
    env = environments["dev"]
    ecr = moto_server.client("ecr", env.region)  # where `mlops deploy dev` looks
    for image in environment_images(env):
        ecr.create_repository(repositoryName=image.repository)
    project = tmp_path / "checkout"
    shutil.copytree(ROOT / "environments", project / "environments")
    shutil.copy(ROOT / "cdktf.json", project / "cdktf.json")
    proc = subprocess.run([MLOPS, "deploy", "dev"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **moto_server.client_env(), "MLOPS_ROOT": str(project),
                               "AWS_DEFAULT_REGION": env.region})
    assert proc.returncode == 1, proc.stderr
    tag = image_tag()
    assert f"mlops-dev-training:{tag} (no such tag)" in proc.stderr
    assert f"mlops-dev-inference:{tag} (no such tag)" in proc.stderr
    assert "`mlops image push --env dev`" in proc.stderr
    # Refused before anything was synthesized or applied.
    assert "synthesizing" not in proc.stderr and "terraform" not in proc.stderr.replace(
        "mlops deploy dev", "")
    assert not (project / "cdktf.out").exists()


def test_deploy_with_push_images_pushes_what_ecr_lacks_then_goes_on(environments, moto_server, docker,
                                                                    tmp_path, monkeypatch):
    from mlops.deploy import Deployer
    from mlops.project import Project

    env = environments["dev"]
    ecr = moto_server.client("ecr", env.region)
    for image in environment_images(env):
        ecr.create_repository(repositoryName=image.repository)
    for name, value in {**moto_server.client_env(), "AWS_DEFAULT_REGION": env.region}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", f"{docker.parent}:/usr/bin:/bin")
    build(env, find_builder(tmp_path / "logs", which=only(docker)))
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "environments", checkout / "environments")
    Deployer(Project(checkout), push_images=True)._require_images(env, before_platform=True)
    # No refusal: both images were pushed, after one login.
    assert [c["args"][0] for c in calls(tmp_path) if c["args"][0] in ("login", "push")] == [
        "login", "push", "push"]
    for image in environment_images(env):
        ecr.describe_images(repositoryName=image.repository, imageIds=[{"imageTag": image.tag}])
