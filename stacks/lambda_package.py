"""A Lambda function's deployment package, built in Python from `lambdas/<handler>/` plus
`lambdas/shared/` (stacks/constructs/lambda_function.py writes it into the stack's folder; the
tests deploy the same bytes to a local AWS). No cdktf import: building a package is cheap.

The zip keeps the package layout (`lambdas/__init__.py`, `lambdas/shared/...`,
`lambdas/<handler>/...`) and is reproducible: sorted entries, fixed timestamps and permissions,
no bytecode.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

from stacks.layers import ZIP_EPOCH

# The repository's handler package; tests point `lambdas_dir` at a fixture package instead.
LAMBDAS_DIR = Path(__file__).resolve().parents[1] / "lambdas"
SKIPPED_PARTS = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")
SKIPPED_SUFFIXES = (".pyc", ".pyo")


def package_files(lambdas_dir: Path, handler: str) -> list[tuple[str, Path]]:
    """(name in the zip, file) for the package marker, shared/ and the handler's folder, sorted."""
    files = [("lambdas/__init__.py", lambdas_dir / "__init__.py")]
    for folder in ("shared", handler):
        root = lambdas_dir / folder
        for path in root.rglob("*") if root.is_dir() else ():
            rel = path.relative_to(lambdas_dir)
            if (
                path.is_file()
                and not any(part in SKIPPED_PARTS for part in rel.parts)
                and path.suffix not in SKIPPED_SUFFIXES
            ):
                files.append((f"lambdas/{rel.as_posix()}", path))
    missing = [str(p) for _, p in files if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Lambda package files missing: {missing}")
    return sorted(files)


def build_package(lambdas_dir: Path, handler: str) -> bytes:
    """The deployment zip: same files in, same bytes out, whatever the checkout's mtimes/umask."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, path in package_files(lambdas_dir, handler):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            info.create_system = 3  # unix, so the permissions above are honoured
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def package_hash(package: bytes) -> str:
    """What Lambda reports as CodeSha256 and Terraform compares as source_code_hash."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode()
