"""Keeping the sagemaker SDK offline and quiet while it builds a pipeline definition."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

# Placeholders: building a definition makes no AWS call. The SDK fails without a region
# (NoRegionError); offline, its value does not matter.
_PLACEHOLDERS = {"AWS_ACCESS_KEY_ID": "offline", "AWS_SECRET_ACCESS_KEY": "offline",
                 "AWS_EC2_METADATA_DISABLED": "true"}
_HIDDEN = ("AWS_SESSION_TOKEN", "AWS_PROFILE")


@contextlib.contextmanager
def offline_sdk() -> Iterator[None]:
    """Placeholder credentials and a quiet SDK inside the block; everything restored after it.

    - ProcessingStep() creates a LocalSession (SDK 3.27, to check its arguments' caller), and the
      SDK creates boto3 clients while it is imported; on a machine without credentials botocore
      then asks the EC2 metadata service: seconds of retries per step, and traffic off the
      machine. Only this block sees the placeholders: a later `terraform apply` keeps the user's.
    - Importing the SDK runs `logging.basicConfig(level=INFO)` (sagemaker.core.experiments), which
      would turn on every library's INFO logging in our CLI; the root logger is put back.
    - "No Job being started" and "Popping out ProcessingJobName" are what we ask for here.
    """
    saved_env = {k: os.environ.get(k) for k in (*_PLACEHOLDERS, "AWS_DEFAULT_REGION", *_HIDDEN)}
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    sagemaker_logger = logging.getLogger("sagemaker")
    saved_sagemaker_level = sagemaker_logger.level
    os.environ.update(_PLACEHOLDERS)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for key in _HIDDEN:
        os.environ.pop(key, None)
    sagemaker_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"sagemaker(\.|$)")
            yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        root.setLevel(saved_root[0])
        root.handlers[:] = saved_root[1]
        sagemaker_logger.setLevel(saved_sagemaker_level)
