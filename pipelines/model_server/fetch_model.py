"""Fetch a model archive from S3 and extract it where the server loads it: what SageMaker does
before it starts an inference container, done by the container's own image where nothing does it
for us (the EKS Deployment's init container: `python -m model_server.fetch_model URL DIR`).

Credentials come from the standard chain: on EKS, the pod's IRSA role (AWS_ROLE_ARN and
AWS_WEB_IDENTITY_TOKEN_FILE, set by the pod identity webhook). The archive is streamed, never
written whole to disk, through tarfile's `data` filter: a member or link that would land outside
DIR (`..`, links to absolute paths) refuses the archive; absolute names lose their leading /.
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path
from urllib.parse import urlparse


class FetchError(RuntimeError):
    """The URL, the object or the archive is unusable; the message says which."""


def parse_s3_url(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key.endswith(".tar.gz"):
        raise FetchError(f"{url!r} is not an s3://BUCKET/KEY.tar.gz URL of a model archive")
    return parsed.netloc, key


def extract(stream, target: Path) -> list[str]:
    """Extract a gzip'd tar read from `stream` into `target`; the member names, in order."""
    target.mkdir(parents=True, exist_ok=True)
    names = []
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as archive:
            for member in archive:
                # The data filter refuses the member before writing it.
                archive.extract(member, target, filter="data")
                names.append(member.name)
    except tarfile.FilterError as exc:
        raise FetchError(f"unsafe member in the model archive: {exc}") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FetchError(f"not a readable .tar.gz model archive: {exc}") from None
    return names


def fetch(url: str, target: Path, s3=None) -> list[str]:
    bucket, key = parse_s3_url(url)
    if s3 is None:
        import boto3

        s3 = boto3.client("s3")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except (ClientError, BotoCoreError) as exc:
        raise FetchError(f"cannot read {url}: {exc}") from None
    with body:
        return extract(body, target)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m model_server.fetch_model s3://BUCKET/KEY.tar.gz TARGET_DIR", file=sys.stderr)
        return 2
    try:
        names = fetch(args[0], Path(args[1]))
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"extracted {len(names)} entries of {args[0]} into {args[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
