"""A Lambda layer version from a zip the project built (stacks/layers.py, `mlops layers build`).

The zip goes to S3 first (a layer over 50 MB zipped can only be published from S3), encrypted
with the platform key, under a key named by its content hash; the layer version is published from
there with its SHA-256, for the functions' runtime and architecture. The zip is linked (or copied)
into the stack folder and referenced relative to it, so the synthesized JSON stays
machine-independent, as the functions' own packages are. With code signing on, the version is
published from the zip's signed copy instead (stacks/constructs/code_signing.py).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from stacks.binding import Construct, aws
from stacks.constructs.code_signing import CodeSigning
from stacks.layers import RUNTIME

ASSET_DIR = Path("assets") / "layers"


@dataclass(frozen=True)
class LambdaLayerProps:
    name: str  # the layer's name, e.g. mlops-dev-demo-scientific
    description: str
    zip_path: Path  # the built zip in the layer cache
    stack_dir: Path
    bucket: str  # the artifacts bucket
    key_prefix: str  # e.g. demo/lambda-layers
    kms_key_arn: str
    architecture: str = "x86_64"
    # Signs the zip (stacks/constructs/code_signing.py): a function under an Enforce code-signing
    # config takes only layers signed by an allowed profile. None publishes the zip unsigned.
    signing: CodeSigning | None = None

    def __post_init__(self) -> None:
        if not self.zip_path.is_file():
            raise ValueError(f"layer {self.name}: no zip at {self.zip_path}")


class LambdaLayer(Construct):
    def __init__(self, scope: Construct, id_: str, props: LambdaLayerProps):
        super().__init__(scope, id_)
        self.props = props
        relative = ASSET_DIR / props.zip_path.name
        _place(props.zip_path, props.stack_dir / relative)
        digest = hashlib.sha256(props.zip_path.read_bytes()).digest()
        with zipfile.ZipFile(props.zip_path) as archive:
            self.unzipped_bytes = sum(i.file_size for i in archive.infolist())
        self.object = aws.s3_object.S3Object(
            self, "zip", bucket=props.bucket, key=f"{props.key_prefix}/{props.zip_path.name}",
            source=relative.as_posix(), source_hash=digest.hex(),
            server_side_encryption="aws:kms", kms_key_id=props.kms_key_arn,
        )
        if props.signing is None:
            code = {"s3_bucket": props.bucket, "s3_key": self.object.key,
                    "source_code_hash": base64.b64encode(digest).decode()}
        else:
            # A new signed copy (a new key) for each new object version: a new layer version.
            signed = props.signing.sign(self, "signed", self.object)
            code = {"s3_bucket": signed.bucket, "s3_key": signed.key}
        self.version = aws.lambda_layer_version.LambdaLayerVersion(
            self, "version", layer_name=props.name, description=props.description[:256], **code,
            compatible_runtimes=[RUNTIME], compatible_architectures=[props.architecture],
        )

    @property
    def arn(self) -> str:
        """The version's ARN (what a function's `layers` takes)."""
        return self.version.arn


def _place(source: Path, target: Path) -> None:
    """A hard link where the file system allows (the scientific layer is ~50 MB and every
    environment's stack folder gets it), a copy elsewhere."""
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
