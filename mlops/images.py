"""`mlops image build|push`: the environment's training and inference images, built with the
machine's OCI builder from pipelines/ and pushed to the platform's ECR repositories under the
content-hash tag the project stacks reference (stacks/images.py); and the check `mlops deploy`
makes before it lets Terraform create or update a pipeline or an endpoint that runs them.

The builder's own output goes to `.mlops/logs/image-<purpose>.log`, as Terraform's does; the
screen gets one line per image.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mlops.deploy import say
from stacks.config import Environment
from stacks.images import BUILD_CONTEXT, DOCKERFILE, Image, environment_images

# OCI builders that take docker's commands (build -f/--target/-t, login --password-stdin, push).
BUILDERS = ("docker", "podman")
PROBE_SECONDS = 30
BUILD_SECONDS = 3600


class ImageError(Exception):
    """What stops an image command, in one line for the person who ran it."""


@dataclass(frozen=True)
class Builder:
    name: str
    path: str
    logs: Path

    def run(self, log_name: str, *args: str, stdin: str | None = None) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{log_name}.log"
        with log.open("a") as out:
            out.write(f"\n$ {self.name} {' '.join(args)}\n")
            out.flush()
            proc = subprocess.run([self.path, *args], input=stdin, stdout=out, stderr=subprocess.STDOUT,
                                  text=True, timeout=BUILD_SECONDS, check=False)
        if proc.returncode != 0:
            tail = [line for line in log.read_text().splitlines()[-5:] if line.strip()]
            raise ImageError(f"`{self.name} {args[0]}` failed (exit {proc.returncode}; whole output: "
                             f"{log}): {' | '.join(tail)}")

    def has_image(self, uri: str) -> bool:
        proc = subprocess.run([self.path, "image", "inspect", uri], capture_output=True, text=True,
                              timeout=PROBE_SECONDS, check=False)
        return proc.returncode == 0


def find_builder(logs: Path, which: Callable[[str], str | None] = shutil.which) -> Builder:
    """The first builder whose engine answers (`docker info` needs a running daemon; a client
    alone cannot build)."""
    reasons = []
    for name in BUILDERS:
        path = which(name)
        if path is None:
            reasons.append(f"no {name} on PATH")
            continue
        try:
            probe = subprocess.run([path, "info"], capture_output=True, text=True, timeout=PROBE_SECONDS,
                                   check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"{name} did not answer ({exc})")
            continue
        if probe.returncode == 0:
            return Builder(name, path, logs)
        detail = next((line.strip() for line in (probe.stderr + probe.stdout).splitlines()
                       if line.strip()), f"exit {probe.returncode}")
        reasons.append(f"{name} is installed but its engine does not answer ({detail})")
    raise ImageError("no OCI builder can build the images here: " + "; ".join(reasons))


def build(env: Environment, builder: Builder) -> list[dict[str, Any]]:
    built = []
    for image in environment_images(env):
        say(f"==> {image.purpose}: {builder.name} build --target {image.target} -t {image.uri}")
        builder.run(f"image-{image.purpose}", "build", "-f", str(DOCKERFILE), "--target", image.target,
                    "-t", image.uri, str(BUILD_CONTEXT))
        built.append({"purpose": image.purpose, "uri": image.uri, "tag": image.tag, "built": True})
    return built


def push(env: Environment, builder: Builder, ecr: Any) -> list[dict[str, Any]]:
    """Push what is not in the repository yet (the repositories are IMMUTABLE: a tag is pushed
    once; the same tag is the same content by construction)."""
    images = environment_images(env)
    missing = {i.purpose for i in missing_images(ecr, images)}
    logged_in = False
    pushed = []
    for image in images:
        if image.purpose not in missing:
            say(f"==> {image.purpose}: {image.repository}:{image.tag} is in the repository already")
            pushed.append({"purpose": image.purpose, "uri": image.uri, "tag": image.tag, "pushed": False})
            continue
        if not builder.has_image(image.uri):
            raise ImageError(f"{image.uri} is not built on this machine: run `mlops image build "
                             f"--env {env.name}` first")
        if not logged_in:
            _login(builder, ecr, image)
            logged_in = True
        say(f"==> {image.purpose}: {builder.name} push {image.uri}")
        builder.run(f"image-{image.purpose}", "push", image.uri)
        pushed.append({"purpose": image.purpose, "uri": image.uri, "tag": image.tag, "pushed": True})
    return pushed


def _login(builder: Builder, ecr: Any, image: Image) -> None:
    """`aws ecr get-login-password | docker login --password-stdin <registry>`, without the AWS
    CLI. The registry host, not the token's `https://` proxyEndpoint: podman refuses a scheme."""
    account = image.registry.split(".", 1)[0]
    data = _aws("ECR GetAuthorizationToken",
                lambda: ecr.get_authorization_token(registryIds=[account])["authorizationData"][0])
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    builder.run(f"image-{image.purpose}", "login", "--username", user, "--password-stdin",
                image.registry, stdin=password)


def _aws(what: str, call):
    """`call()`, with an AWS refusal (AccessDenied, ExpiredToken, no credentials) as one line."""
    try:
        return call()
    except (ClientError, BotoCoreError) as exc:
        raise ImageError(f"{what} failed: {exc}") from None


@dataclass(frozen=True)
class MissingImage:
    image: Image
    reason: str  # "no such tag" | "no such repository"

    @property
    def purpose(self) -> str:
        return self.image.purpose


def missing_images(ecr: Any, images: list[Image]) -> list[MissingImage]:
    missing = []
    for image in images:
        try:
            ecr.describe_images(repositoryName=image.repository, imageIds=[{"imageTag": image.tag}])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "ImageNotFoundException":
                missing.append(MissingImage(image, "no such tag"))
            elif code == "RepositoryNotFoundException":
                missing.append(MissingImage(image, "no such repository"))
            else:
                raise ImageError(f"ECR DescribeImages {image.repository}:{image.tag} failed: {exc}") from None
        except BotoCoreError as exc:
            raise ImageError(f"ECR DescribeImages {image.repository}:{image.tag} failed: {exc}") from None
    return missing


def refusal(env: Environment, missing: list[MissingImage]) -> str:
    names = ", ".join(f"{m.image.repository}:{m.image.tag} ({m.reason})" for m in missing)
    return (f"{env.name}: the project stacks run images ECR does not hold: {names}. Push them with "
            f"`mlops image push --env {env.name}` (after `mlops image build --env {env.name}`), then "
            f"run `mlops deploy {env.name}` again")
