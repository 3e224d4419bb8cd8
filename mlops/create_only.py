"""Create-only S3 uploads: an object is written once and never replaced.

What `mlops model promote` copies into a production environment (`<project>/promoted/...`) is what
the approver approved and the deploy handler serves; the ML engineer persona, who writes it, may
only create objects there: its policy denies a PutObject or CompleteMultipartUpload without the
`If-None-Match` header (`s3:if-none-match`, "Enforce conditional writes on Amazon S3 buckets") and
every delete (stacks/personas.py). Every write here sends `If-None-Match: *`, so S3 refuses it with
412 PreconditionFailed when the key exists. An existing object with the same SHA-256 is the same
copy (an earlier run that stopped before registering the package): reused. Another one is an
error, never overwritten.

boto3's managed transfer (upload_fileobj, s3transfer 0.19) passes no IfNoneMatch, so the
multipart upload is made here: CreateMultipartUpload and UploadPart take no conditional header (AWS
exempts them with `s3:ObjectCreationOperation`), CompleteMultipartUpload takes it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from typing import Any, Protocol

from botocore.exceptions import ClientError

# One PUT up to this size (the body is held in memory), parts of this size above it (S3: 5 MiB to
# 5 GiB a part, at most 10,000 parts: archives up to ~160 GiB).
PART_BYTES = 16 * 1024 * 1024
SHA256_METADATA = "sha256"  # x-amz-meta-sha256: the object's SHA-256, where a single PUT knew it
PRECONDITION_FAILED = {"PreconditionFailed", "412"}


class Hashing(Protocol):
    """A readable stream that hashes what passes through it."""

    sha256: Any

    def read(self, amount: int = -1) -> bytes: ...


class DifferentObjectError(Exception):
    """The key holds another object than the one being written; the message says which."""


def _chunks(stream: Hashing) -> Iterator[bytes]:
    while chunk := stream.read(PART_BYTES):
        yield chunk


def _refused_as_existing(exc: ClientError) -> bool:
    error = exc.response.get("Error") or {}
    status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return error.get("Code") in PRECONDITION_FAILED or status == 412


def existing_sha256(s3: Any, bucket: str, key: str) -> str:
    """The stored object's SHA-256: its metadata's when a single PUT recorded it, else read and
    hashed (a multipart upload knew its digest only when it ended)."""
    head = s3.head_object(Bucket=bucket, Key=key)
    recorded = (head.get("Metadata") or {}).get(SHA256_METADATA)
    if recorded:
        return recorded
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    while chunk := body.read(PART_BYTES):
        digest.update(chunk)
    return digest.hexdigest()


def upload_once(s3: Any, bucket: str, key: str, stream: Hashing, extra: dict[str, Any]) -> bool:
    """Writes the stream to s3://bucket/key unless the key exists. True: created; False: the key
    held the same bytes already (reused). DifferentObjectError: it holds other bytes."""
    chunks = _chunks(stream)
    first = next(chunks, b"")
    second = next(chunks, None)
    try:
        if second is None:
            metadata = {**extra.get("Metadata", {}), SHA256_METADATA: hashlib.sha256(first).hexdigest()}
            s3.put_object(Bucket=bucket, Key=key, Body=first, IfNoneMatch="*",
                          **{**extra, "Metadata": metadata})
        else:
            _multipart(s3, bucket, key, [first, second], chunks, extra)
        return True
    except ClientError as exc:
        if not _refused_as_existing(exc):
            raise
    for _ in chunks:  # the whole stream read: its digest is complete
        pass
    ours, theirs = stream.sha256.hexdigest(), existing_sha256(s3, bucket, key)
    if ours != theirs:
        raise DifferentObjectError(
            f"s3://{bucket}/{key} exists with SHA-256 {theirs}, not the copy's {ours}: a promoted "
            "copy is never overwritten (remove the stray object with the platform's deploy identity, "
            "or promote another version)")
    return False


def _multipart(s3: Any, bucket: str, key: str, head: list[bytes], rest: Iterator[bytes],
               extra: dict[str, Any]) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
    try:
        parts = []
        for number, chunk in enumerate(itertools.chain(head, rest), start=1):
            etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                                  Body=chunk)["ETag"]
            parts.append({"ETag": etag, "PartNumber": number})
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, IfNoneMatch="*",
                                     MultipartUpload={"Parts": parts})
    except BaseException:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        raise

