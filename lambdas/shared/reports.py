"""Writing a scheduled check's report to the artifacts bucket (drift, model quality)."""

from __future__ import annotations

from typing import Any


def put_report(s3: Any, bucket: str, key: str, body: bytes, content_type: str, kms_key_id: str | None) -> str:
    """PutObject, SSE-KMS with `kms_key_id` if given (else the bucket's default); the object's URI."""
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **extra)
    return f"s3://{bucket}/{key}"
