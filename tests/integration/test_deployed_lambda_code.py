"""The local control plane runs what was deployed (local_aws/lambda_code.py): each function's
package and layers as the local Lambda hands them out (GetFunction's Code.Location,
GetLayerVersion's Content.Location, closed in local_aws/lambda_code_urls.py), checked against
their CodeSha256, run by the function's runtime interpreter with nothing of this checkout."""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile

import pytest

from local_aws.lambda_code import CodeUnavailable, DeployedCode, code_sha256, runtime_python
from local_aws.lambda_runtime import LambdaProcesses

pytestmark = pytest.mark.integration

HANDLER = '''
import importlib.util, sys
import layer_helper


def handler(event, context):
    return {"version": "{version}", "layer": layer_helper.NAME,
            "checkout": [m for m in ("lambdas", "stacks", "local_aws", "numpy")
                         if importlib.util.find_spec(m) is not None],
            "python": list(sys.version_info[:2]), "task_root": sys.path[0]}
'''


def package(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture
def deployed(moto_server, tmp_path):
    """A role, a layer and a function whose module exists only in its package."""
    iam, lam = moto_server.client("iam"), moto_server.client("lambda")
    role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "lambda.amazonaws.com"}}]}))
    layer = lam.publish_layer_version(
        LayerName="helpers", CompatibleRuntimes=["python3.12"],
        Content={"ZipFile": package({"python/layer_helper.py": "NAME = 'from the layer'\n"})})
    lam.create_function(FunctionName="fn", Runtime="python3.12", Role=role["Role"]["Arn"],
                        Handler="deployed_only.handler", Layers=[layer["LayerVersionArn"]],
                        Code={"ZipFile": package({"deployed_only.py": HANDLER.replace("{version}", "1")})})
    processes = LambdaProcesses(moto_server.client_env(), moto_server.region, tmp_path / "logs",
                                code=DeployedCode(lambda _account: lam, tmp_path / "lambda",
                                                  moto_server.ca_bundle))
    yield lam, processes
    processes.close()


def test_a_function_runs_its_deployed_package_and_layers_and_nothing_of_this_checkout(deployed, moto_server):
    assert runtime_python("3.12"), "the functions' runtime (Python 3.12) is needed to run them as Lambda does"
    lam, processes = deployed
    answer = processes.invoke(lam.get_function_configuration(FunctionName="fn"), {})
    assert answer["version"] == "1" and answer["layer"] == "from the layer"
    assert answer["python"] == [3, 12]
    assert answer["checkout"] == []  # neither this repository's packages nor this Python's site-packages

    # A new deployment runs at the next invocation; what is not deployed never does.
    lam.update_function_code(FunctionName="fn", ZipFile=package(
        {"deployed_only.py": HANDLER.replace("{version}", "2")}))
    assert processes.invoke(lam.get_function_configuration(FunctionName="fn"), {})["version"] == "2"


def test_the_locations_serve_exactly_the_deployed_bytes(deployed, moto_server):
    import ssl

    lam, _ = deployed
    got = lam.get_function(FunctionName="fn")
    tls = ssl.create_default_context(cafile=moto_server.ca_bundle)
    with urllib.request.urlopen(got["Code"]["Location"], context=tls) as reply:
        assert code_sha256(reply.read()) == got["Configuration"]["CodeSha256"]
    layer_arn = got["Configuration"]["Layers"][0]["Arn"]
    content = lam.get_layer_version(LayerName=layer_arn.rsplit(":", 1)[0], VersionNumber=1)["Content"]
    assert content["Location"].startswith(moto_server.endpoint_url)
    with urllib.request.urlopen(content["Location"], context=tls) as reply:
        assert code_sha256(reply.read()) == content["CodeSha256"]
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(content["Location"].replace("/helpers/1", "/helpers/9"), context=tls)


def test_a_package_that_does_not_match_its_digest_is_refused(deployed, moto_server, tmp_path):
    lam, _ = deployed
    configuration = lam.get_function_configuration(FunctionName="fn")

    class Tampered:
        def __getattr__(self, name):
            return getattr(lam, name)

        def get_function(self, **kwargs):
            got = lam.get_function(**kwargs)
            got["Configuration"]["CodeSha256"] = code_sha256(b"something else")
            return got

    code = DeployedCode(lambda account: Tampered(), tmp_path / "tampered", moto_server.ca_bundle)
    with pytest.raises(CodeUnavailable, match="function fn: the downloaded package's SHA-256"):
        code.deployment(configuration)
