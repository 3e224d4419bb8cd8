"""Lambda execution environments of the local control plane (local_aws/lambda_runtime.py): each
function in a process of its own, with its own environment, initialized once, its output in its
log, killed past its Timeout."""

from __future__ import annotations

import os

import pytest

from local_aws.lambda_runtime import LambdaProcesses

HANDLER = '''
import os, time

LOADED = time.time()
print("cold start of", os.environ["AWS_LAMBDA_FUNCTION_NAME"])


def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"pid": os.getpid(), "colour": os.environ.get("COLOUR"), "loaded": LOADED,
            "remaining_ms": context.get_remaining_time_in_millis(), "name": context.function_name}
'''


def configuration(name: str, handler: str = "fn.handler", timeout: int = 3, **variables: str) -> dict:
    return {"FunctionName": name, "FunctionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
            "Handler": handler, "Timeout": timeout, "MemorySize": 128, "CodeSha256": "abc",
            "Environment": {"Variables": variables}}


@pytest.fixture
def lambdas(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "fn.py").write_text(HANDLER)
    (code / "broken.py").write_text("raise ImportError('no such dependency')\n")
    processes = LambdaProcesses({"AWS_ENDPOINT_URL": "https://127.0.0.1:1"}, "us-east-1", tmp_path / "logs",
                                code_dir=code)
    yield processes
    processes.close()


def test_each_function_runs_in_its_own_warm_process_with_its_own_environment(lambdas, tmp_path):
    red = lambdas.invoke(configuration("red", COLOUR="red"), {})
    blue = lambdas.invoke(configuration("blue", COLOUR="blue"), {})
    again = lambdas.invoke(configuration("red", COLOUR="red"), {})
    assert (red["colour"], blue["colour"]) == ("red", "blue") and "COLOUR" not in os.environ
    assert len({red["pid"], blue["pid"], os.getpid()}) == 3
    assert again["pid"] == red["pid"] and again["loaded"] == red["loaded"]  # initialized once
    assert red["name"] == "red" and 0 < red["remaining_ms"] <= 3000
    assert "cold start of red" in (tmp_path / "logs" / "red.log").read_text()


def test_a_new_configuration_gets_a_new_environment(lambdas):
    first = lambdas.invoke(configuration("fn", COLOUR="red"), {})
    second = lambdas.invoke(configuration("fn", COLOUR="green"), {})
    assert second["colour"] == "green" and second["pid"] != first["pid"]


def test_failures_name_the_function_and_the_error(lambdas):
    with pytest.raises(RuntimeError, match="fn: ValueError: asked to fail"):
        lambdas.invoke(configuration("fn"), {"fail": True})
    assert lambdas.invoke(configuration("fn"), {})["colour"] is None  # still warm after an error
    with pytest.raises(RuntimeError, match="broken: init failed: ImportError: no such dependency"):
        lambdas.invoke(configuration("broken", handler="broken.handler"), {})


def test_an_invocation_past_the_timeout_is_killed(lambdas):
    slow = configuration("slow", timeout=1)
    with pytest.raises(RuntimeError, match=r"slow: Task timed out after 1\.00 seconds"):
        lambdas.invoke(slow, {"sleep": 30})
    assert lambdas.invoke(slow, {})["colour"] is None  # a fresh environment afterwards


class FakeSts:
    """STS AssumeRole as the local AWS answers it: new keys each time."""

    def __init__(self):
        self.calls = []

    def assume_role(self, RoleArn, RoleSessionName, DurationSeconds):
        self.calls.append((RoleArn, RoleSessionName, DurationSeconds))
        n = len(self.calls)
        return {"Credentials": {"AccessKeyId": f"ASIA{n:016d}", "SecretAccessKey": f"secret{n}",
                                "SessionToken": f"token{n}"}}


def test_each_function_calls_as_a_session_of_its_role_renewed_before_it_expires(tmp_path):
    from local_aws.role_sessions import RENEW_AFTER_SECONDS, RoleSessions

    code = tmp_path / "code"
    code.mkdir()
    (code / "fn.py").write_text("import os\n\ndef handler(event, context):\n"
                                "    return {k: os.environ.get(k) for k in ('AWS_ACCESS_KEY_ID', "
                                "'AWS_SESSION_TOKEN')} | {'pid': os.getpid()}\n")
    sts, now = FakeSts(), [0.0]
    processes = LambdaProcesses({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}, "us-east-1",
                                tmp_path / "logs", code_dir=code,
                                sessions=RoleSessions(lambda: sts, clock=lambda: now[0]))
    role = "arn:aws:iam::123456789012:role/mlops-local/mlops-local-demo-gate"
    try:
        first = processes.invoke({**configuration("mlops-local-demo-gate"), "Role": role}, {})
        again = processes.invoke({**configuration("mlops-local-demo-gate"), "Role": role}, {})
        assert first["AWS_ACCESS_KEY_ID"] == "ASIA0000000000000001" and first["AWS_SESSION_TOKEN"] == "token1"
        assert again["pid"] == first["pid"] and sts.calls == [(role, "mlops-local-demo-gate", 3600)]
        now[0] += RENEW_AFTER_SECONDS + 1  # the session is renewed: a new environment gets it
        renewed = processes.invoke({**configuration("mlops-local-demo-gate"), "Role": role}, {})
        assert renewed["AWS_SESSION_TOKEN"] == "token2" and renewed["pid"] != first["pid"]
    finally:
        processes.close()
