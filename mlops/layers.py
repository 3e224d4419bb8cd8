"""`mlops layers build`: the Lambda layers of stacks/layers.py, from pinned wheels for the
functions' runtime and architecture, into the content-addressed cache synth reads.

pip downloads the wheels for the target platform (`--only-binary=:all: --platform
manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --python-version 3.12`: the functions'
runtime, see stacks/layers.py for why not 3.11), constrained by requirements.lock so every
dependency has the locked version too; the wheels are unpacked under `python/` (where the Lambda
Python runtime looks, /opt/python) and zipped reproducibly. A cached zip is never rebuilt.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from mlops.deploy import say
from stacks.layers import (
    LOCK_FILE,
    PLATFORMS,
    PYTHON_VERSION,
    UNZIPPED_LIMIT_BYTES,
    ZIP_EPOCH,
    LayerSpec,
    all_layers,
    layer_zip,
    requirements,
)

DOWNLOAD_SECONDS = 900


class LayerBuildError(Exception):
    """A layer could not be built; the message says which and why, in one line."""


def build(specs: tuple[LayerSpec, ...] | None = None, architecture: str = "x86_64") -> list[dict[str, Any]]:
    built = []
    for spec in specs or all_layers():
        target = layer_zip(spec, architecture)
        if target.is_file():
            say(f"==> layer {spec.name} ({architecture}): cached {target}")
            built.append(_entry(spec, target, cached=True))
            continue
        say(f"==> layer {spec.name} ({architecture}): downloading {', '.join(requirements(spec))} "
            f"for {' or '.join(PLATFORMS[architecture])}, Python {PYTHON_VERSION}")
        with tempfile.TemporaryDirectory(prefix=f"layer-{spec.name}-") as tmp:
            wheels = Path(tmp) / "wheels"
            _download(spec, architecture, wheels, Path(tmp) / "constraints.txt")
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            size = _zip_wheels(sorted(wheels.glob("*.whl")), partial)
            if size > UNZIPPED_LIMIT_BYTES:
                partial.unlink()
                raise LayerBuildError(f"layer {spec.name}: {size / 2**20:.0f} MB unzipped, over Lambda's "
                                      f"{UNZIPPED_LIMIT_BYTES // 2**20} MB for a function and its layers")
            os.replace(partial, target)  # whole or absent: a reader never sees half a zip
        zipped = target.stat().st_size
        say(f"    {target.name}: {size / 2**20:.1f} MB unzipped, {zipped / 2**20:.1f} MB zipped")
        built.append(_entry(spec, target, cached=False))
    return built


def _entry(spec: LayerSpec, path: Path, *, cached: bool) -> dict[str, Any]:
    return {"layer": spec.name, "zip": str(path), "requirements": requirements(spec), "cached": cached}


def _download(spec: LayerSpec, architecture: str, wheels: Path, constraints: Path) -> None:
    # The lock's pins (markers and all) constrain every dependency pip resolves for the platform.
    constraints.write_text("\n".join(line for line in LOCK_FILE.read_text().splitlines()
                                     if "==" in line and not line.lstrip().startswith("#")) + "\n")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", *(f"--platform={p}" for p in PLATFORMS[architecture]),
           "--python-version", PYTHON_VERSION, "--implementation", "cp",
           "--dest", str(wheels), "--constraint", str(constraints), *requirements(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise LayerBuildError(f"layer {spec.name}: pip download took over {DOWNLOAD_SECONDS} s") from None
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        raise LayerBuildError(f"layer {spec.name}: pip download failed (exit {proc.returncode}): "
                              f"{' | '.join(lines[-3:])}")


def _zip_wheels(wheels: list[Path], target: Path) -> int:
    """Every wheel's files under python/, sorted, with fixed timestamps: the same wheels give the
    same bytes. Returns the unzipped size."""
    files: dict[str, bytes] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    files[f"python/{info.filename}"] = archive.read(info)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as out:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(info, files[name])
    return sum(len(b) for b in files.values())
