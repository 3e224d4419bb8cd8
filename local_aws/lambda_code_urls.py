"""Where the local Lambda hands out deployed code, as AWS does and moto does not.

In AWS, GetFunction answers `Code.Location` (a presigned URL of the deployment package, valid for
ten minutes) and GetLayerVersion `Content.Location` (the same for a layer). moto answers no
location for a zip function and `s3://` for a layer, though it keeps the bytes. Here both are
URLs of this server (`/_local/lambda-code/<account>/<region>/function/<name>` and
`.../layer/<name>/<version>`) that answer the stored bytes, so the local control plane runs the
code Terraform deployed (local_aws/lambda_code.py). Like a presigned URL, they need no signature;
they serve 127.0.0.1 only.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from moto.awslambda import exceptions as lambda_exceptions
from moto.awslambda import models as lambda_models

PATH = "/_local/lambda-code/"
_public_url = ""  # this server's https://127.0.0.1:<port>, set before it serves


def _location(account: str, region: str, *parts: str) -> str:
    quoted = "/".join(urllib.parse.quote(p, safe="") for p in (account, region, *parts))
    return f"{_public_url}{PATH}{quoted}"


def patch(public_url: str) -> None:
    global _public_url
    _public_url = public_url.rstrip("/")
    get_code = lambda_models.LambdaFunction.get_code
    get_layer_version = lambda_models.LayerVersion.get_layer_version

    def code(self: Any) -> dict[str, Any]:
        answer = get_code(self)
        if "ImageUri" not in self.code and self.code_bytes:
            answer["Code"] = {"RepositoryType": "S3", "Location": _location(
                self.account_id, self.region, "function", self.function_name)}
        return answer

    def layer_version(self: Any) -> dict[str, Any]:
        answer = get_layer_version(self)
        if self.code_bytes and self._layer is not None:
            answer["Content"]["Location"] = _location(self.account_id, self.region, "layer", self.name,
                                                      str(self.version))
        return answer

    lambda_models.LambdaFunction.get_code = code
    lambda_models.LayerVersion.get_layer_version = layer_version


def serve(environ: dict, start_response: Any) -> list[bytes]:
    """GET one of the locations above: the package's bytes, or 404 naming what was not found."""
    parts = [urllib.parse.unquote(p) for p in environ.get("PATH_INFO", "")[len(PATH):].split("/")]
    try:
        account, region, kind, *rest = parts
        backend = lambda_models.lambda_backends[account][region]
        if kind == "function" and len(rest) == 1:
            data = backend.get_function(rest[0]).code_bytes
        elif kind == "layer" and len(rest) == 2:
            data = backend.get_layer_version(rest[0], rest[1]).code_bytes
        else:
            raise ValueError(f"expected {PATH}<account>/<region>/function/<name> or "
                             ".../layer/<name>/<version>")
    except (ValueError, KeyError, lambda_exceptions.LambdaClientError) as exc:
        message = f"no deployed code at {environ.get('PATH_INFO')}: {exc}".encode()
        start_response("404 Not Found", [("Content-Type", "text/plain"),
                                         ("Content-Length", str(len(message)))])
        return [message]
    start_response("200 OK", [("Content-Type", "application/zip"), ("Content-Length", str(len(data)))])
    return [data]
