"""The container images an environment's jobs and endpoints run, and the tag they carry.

Light on purpose (no cdktf binding): `mlops image build|push` and the pre-deploy check read the
same names and tag the project stack writes into every pipeline step and model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pipelines.bundle import REPO_ROOT
from stacks.config import Environment
from stacks.naming import Naming

BUILD_CONTEXT = REPO_ROOT / "pipelines"
DOCKERFILE = BUILD_CONTEXT / "image" / "Dockerfile"
# Everything the Dockerfile copies from its context (pipelines/): the tag follows all of it.
IMAGE_SOURCES = (BUILD_CONTEXT / "image", BUILD_CONTEXT / "model_server")
DOCKERIGNORE = BUILD_CONTEXT / ".dockerignore"
# purpose (the ECR repository's suffix, the platform stack's) -> the Dockerfile stage it is.
IMAGE_TARGETS = {"training": "training", "inference": "inference"}


def image_tag() -> str:
    """Content hash of what the images are built from: the tag changes exactly when they would."""
    digest = hashlib.sha256()
    for folder in IMAGE_SOURCES:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            name = path.relative_to(folder.parent).as_posix()
            digest.update(name.encode() + b"\0" + path.read_bytes())
    digest.update(b".dockerignore\0" + DOCKERIGNORE.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Image:
    purpose: str  # training | inference
    target: str  # the Dockerfile stage
    repository: str  # the ECR repository's name, e.g. mlops-dev-training
    registry: str  # <account>.dkr.ecr.<region>.amazonaws.com
    tag: str

    @property
    def uri(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"


def environment_images(env: Environment) -> list[Image]:
    """The images every project stack of `env` references (one pair per environment: the
    repositories belong to the platform stack)."""
    naming = Naming.of(env)
    registry = f"{naming.account_id}.dkr.ecr.{naming.region}.amazonaws.com"
    tag = image_tag()
    return [Image(purpose, target, naming.name(purpose), registry, tag)
            for purpose, target in IMAGE_TARGETS.items()]
