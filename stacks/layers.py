"""The Lambda layers the project builds for its functions: what each holds, for which runtime and
architecture, and where its built zip is cached.

Third-party libraries reach the functions only through these layers, built from the versions
requirements.lock pins, as wheels for the functions' runtime and architecture (never this
machine's). Building needs the package registry, so it happens at set-up (`mlops layers build`,
run by `make setup`), never during synth: synth only reads the cached zip, named by a hash of
everything that decides its content, and stops with the command to run when it is missing.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pipelines.bundle import REPO_ROOT

LOCK_FILE = REPO_ROOT / "requirements.lock"
# The functions' runtime. Not python3.11, the project's own Python: that runtime is Amazon Linux 2
# (glibc 2.26), and the numpy and scipy the lock pins ship only manylinux_2_27/2_28 wheels, which
# need a newer glibc. python3.12 runs on Amazon Linux 2023 (glibc 2.34); the handlers' code is
# the same on both.
RUNTIME = "python3.12"
PYTHON_VERSION = "3.12"
# The wheel platforms pip may take for each architecture, newest first (glibc <= 2.34).
PLATFORMS = {"x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
             "arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64")}
# The zip format's earliest timestamp: a fixed value keeps function and layer zips reproducible.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Lambda's limit for a function and all its layers, unzipped.
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024


class LayerNotBuilt(Exception):
    """A layer zip synth needs is not in the cache."""


@dataclass(frozen=True)
class LayerSpec:
    name: str  # the layer's suffix: <base>-<name>
    packages: tuple[str, ...]  # top-level requirements; versions (and their deps') from the lock
    description: str


POWERTOOLS = LayerSpec("powertools", ("aws-lambda-powertools",),
                       "Powertools for AWS Lambda (Python), the control handlers' one dependency")
SCIENTIFIC = LayerSpec("scientific", ("numpy", "scipy"), "numpy and scipy for the drift engine")
# Which layers each handler needs besides the runtime (boto3 is the runtime's own).
HANDLER_LAYERS: dict[str, tuple[LayerSpec, ...]] = {
    "drift": (POWERTOOLS, SCIENTIFIC),
}
DEFAULT_LAYERS = (POWERTOOLS,)


def layers_for(handler: str) -> tuple[LayerSpec, ...]:
    return HANDLER_LAYERS.get(handler, DEFAULT_LAYERS)


def all_layers() -> tuple[LayerSpec, ...]:
    return (POWERTOOLS, SCIENTIFIC)


def pinned_versions(lock: Path = LOCK_FILE) -> dict[str, str]:
    """name (normalized) -> version, from requirements.lock's `name==version` lines."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            pins[normalize(match.group(1))] = match.group(2)
    return pins


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(spec: LayerSpec, pins: dict[str, str] | None = None) -> list[str]:
    pins = pinned_versions() if pins is None else pins
    missing = [p for p in spec.packages if normalize(p) not in pins]
    if missing:
        raise ValueError(f"layer {spec.name}: {', '.join(missing)} not pinned in {LOCK_FILE.name}")
    return [f"{p}=={pins[normalize(p)]}" for p in spec.packages]


def content_key(spec: LayerSpec, architecture: str, pins: dict[str, str] | None = None) -> str:
    """What decides the layer's bytes: the pinned set (the lock, whose pins also fix every
    dependency), the runtime and the platform."""
    digest = hashlib.sha256()
    for part in (spec.name, RUNTIME, *PLATFORMS[architecture], *requirements(spec, pins),
                 LOCK_FILE.read_text()):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    """Shared by every checkout of this machine (content-addressed, so never stale)."""
    explicit = os.environ.get("MLOPS_LAYER_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlops-platform" / "layers"


def layer_zip(spec: LayerSpec, architecture: str = "x86_64") -> Path:
    return cache_dir() / f"{spec.name}-{architecture}-{content_key(spec, architecture)}.zip"


def built_layer(spec: LayerSpec, architecture: str = "x86_64") -> Path:
    path = layer_zip(spec, architecture)
    if not path.is_file():
        raise LayerNotBuilt(f"the {spec.name} Lambda layer ({architecture}) is not built: run "
                            f"`mlops layers build` (or `make setup`), which downloads its pinned "
                            f"wheels; synth never does (expected {path})")
    return path
