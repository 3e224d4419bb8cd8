"""The local AWS server (moto with local_aws/moto_server.py's fixes) enforces a TLS-only bucket policy
as AWS does: object requests over HTTPS pass, over plain HTTP they are refused."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from local_aws.lifecycle import LocalAws
from stacks import personas
from stacks.config import load_environments
from stacks.naming import Naming
from stacks.policy import deny_insecure_transport, document, statement
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def tls_only_bucket(s3, name: str) -> None:
    s3.create_bucket(Bucket=name)
    allow_reads = statement("AllowAccountReads", ["s3:GetObject"], [f"arn:aws:s3:::{name}/*"],
                            principals={"AWS": "*"},
                            conditions={"StringEquals": {"aws:PrincipalAccount": "123456789012"}})
    s3.put_bucket_policy(Bucket=name, Policy=document([deny_insecure_transport(f"arn:aws:s3:::{name}"),
                                                        allow_reads]))


@pytest.mark.parametrize("tls", [True, False], ids=["https", "http"])
def test_tls_only_policy_is_enforced(tmp_path, tls):
    local = LocalAws(tmp_path / "local", tls=tls)
    server, started = local.start()
    assert started and server.endpoint_url.startswith("https://" if tls else "http://")
    try:
        s3 = server.client("s3")
        tls_only_bucket(s3, "tls-only")
        if tls:
            s3.put_object(Bucket="tls-only", Key="a.txt", Body=b"hello")
            assert s3.get_object(Bucket="tls-only", Key="a.txt")["Body"].read() == b"hello"
        else:
            with pytest.raises(ClientError) as err:
                s3.put_object(Bucket="tls-only", Key="a.txt", Body=b"hello")
            assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        # Bucket-level calls are not object requests: the policy itself stays readable.
        policy = json.loads(s3.get_bucket_policy(Bucket="tls-only")["Policy"])
        assert policy["Statement"][0]["Sid"] == "DenyInsecureTransport"
    finally:
        local.stop()


def test_a_missing_table_is_named_as_aws_names_it(moto_server):
    """Terraform takes a retried DeleteTable's not-found as "already deleted" only when the
    message names the table as AWS does; moto's bare wording failed `local down` now and then."""
    dynamodb = moto_server.client("dynamodb")
    dynamodb.create_table(TableName="gone", BillingMode="PAY_PER_REQUEST",
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    dynamodb.delete_table(TableName="gone")
    with pytest.raises(ClientError) as err:
        dynamodb.delete_table(TableName="gone")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert err.value.response["Error"]["Message"] == "Requested resource not found: Table: gone not found"


def test_a_missing_launch_template_is_named_by_id_as_ec2_names_it(moto_server):
    """The AWS provider takes a retried DeleteLaunchTemplate's InvalidLaunchTemplateId.NotFound
    as "already deleted"; moto's InvalidLaunchTemplateName.NotFoundException failed a destroy."""
    ec2 = moto_server.client("ec2")
    made = ec2.create_launch_template(LaunchTemplateName="nodes", LaunchTemplateData={})
    template = made["LaunchTemplate"]["LaunchTemplateId"]
    ec2.delete_launch_template(LaunchTemplateId=template)
    with pytest.raises(ClientError) as err:
        ec2.delete_launch_template(LaunchTemplateId=template)
    assert err.value.response["Error"]["Code"] == "InvalidLaunchTemplateId.NotFound"
    with pytest.raises(ClientError) as err:  # by name, as EC2 answers a name it does not know
        ec2.delete_launch_template(LaunchTemplateName="nodes")
    assert err.value.response["Error"]["Code"] == "InvalidLaunchTemplateName.NotFoundException"


def test_metric_queries_match_a_metric_by_namespace_name_and_its_whole_dimension_set(moto_server):
    """local_aws/metric_store.py: the dimension order of a query does not matter (Terraform writes
    an alarm's dimensions in any order), the namespace does, and AWS/ namespaces are refused."""
    from datetime import UTC, datetime, timedelta

    cw = moto_server.client("cloudwatch")
    now = datetime.now(UTC)
    dims = [{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "primary"}]
    cw.put_metric_data(Namespace="MLOps/Test", MetricData=[
        {"MetricName": "Calls", "Dimensions": dims, "Value": 2.0, "Timestamp": now},
        {"MetricName": "Calls", "Dimensions": dims[:1], "Value": 100.0, "Timestamp": now},
        {"MetricName": "Calls", "Dimensions": dims, "Value": 3.0, "Timestamp": now - timedelta(hours=2)}])
    cw.put_metric_data(Namespace="MLOps/Other", MetricData=[
        {"MetricName": "Calls", "Dimensions": dims, "Value": 50.0, "Timestamp": now}])

    def total(namespace: str, dimensions: list[dict]) -> list[float]:
        got = cw.get_metric_data(MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": {
            "Namespace": namespace, "MetricName": "Calls", "Dimensions": dimensions},
            "Period": 3600, "Stat": "Sum"}}], StartTime=now - timedelta(minutes=30),
            EndTime=now + timedelta(minutes=30))
        return got["MetricDataResults"][0]["Values"]

    assert total("MLOps/Test", dims) == [2.0]
    assert total("MLOps/Test", dims[::-1]) == [2.0]  # the same metric, dimensions in another order
    assert total("MLOps/Test", dims[:1]) == [100.0]  # another dimension set is another metric
    assert total("MLOps/Other", dims) == [50.0]
    with pytest.raises(ClientError, match="The value AWS/SageMaker for parameter Namespace is invalid"):
        cw.put_metric_data(Namespace="AWS/SageMaker",
                           MetricData=[{"MetricName": "Invocations", "Value": 1.0}])


def test_the_latency_alarm_judges_thin_periods_on_their_median(moto_server):
    """The latency alarm's own queries (stacks/constructs/endpoint_alarms.py), through the local
    AWS's GetMetricData: a period of a handful of requests gives no datapoint (missing data: not
    breaching), a thin one is judged on its median, a full one on its p95."""
    from datetime import UTC, datetime, timedelta

    from stacks.constructs.endpoint_alarms import latency_ratio_expression

    cw = moto_server.client("cloudwatch")
    dims = [{"Name": "EndpointName", "Value": "thin"}, {"Name": "VariantName", "Value": "primary"}]
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    cold, fast, slow = 900_000.0, 4_000.0, 300_000.0
    minutes = [
        [cold] * 3,  # a fresh container's first answers and nothing else: not judged
        [cold] * 2 + [fast] * 8,  # thin, two cold answers: the median is fast
        [slow] * 10,  # thin, a slow model (its slowness thinned its traffic): the median is slow
        [cold] * 3 + [fast] * 97,  # full: the p95
    ]
    for i, values in enumerate(minutes):
        cw.put_metric_data(Namespace="MLOps/Test", MetricData=[
            {"MetricName": "ModelLatency", "Dimensions": dims, "Value": v, "Unit": "Microseconds",
             "Timestamp": start + timedelta(minutes=i, seconds=5)} for v in values])

    def query(id_: str, name: str, stat: str) -> dict:
        return {"Id": id_, "ReturnData": False, "MetricStat": {"Metric": {
            "Namespace": "MLOps/Test", "MetricName": name, "Dimensions": dims}, "Period": 60, "Stat": stat}}

    got = cw.get_metric_data(
        MetricDataQueries=[{"Id": "latency_ratio", "Expression": latency_ratio_expression(50_000, 20)},
                           query("latency_p95", "ModelLatency", "p95"),
                           query("latency_p50", "ModelLatency", "p50"),
                           query("latency_n", "ModelLatency", "SampleCount"),
                           query("baseline_p95", "NoBaselineYet", "Maximum")],
        StartTime=start, EndTime=start + timedelta(minutes=len(minutes)))["MetricDataResults"]
    (result,) = [r for r in got if r["Id"] == "latency_ratio"]
    ratios = {int((t.replace(tzinfo=UTC) - start).total_seconds() // 60): v
              for t, v in zip(result["Timestamps"], result["Values"], strict=True)}
    # Against the 50 ms configured baseline: 4 ms, 300 ms (ALARM at 2x), 4 ms.
    assert ratios == {1: pytest.approx(0.08), 2: pytest.approx(6.0), 3: pytest.approx(0.08)}


def test_create_endpoint_refuses_a_name_in_use_and_a_retried_attempt_gets_its_first_answer(moto_server):
    """moto replaced an endpoint on a second CreateEndpoint, orphaning the one being served and
    leaving the new one Creating for good (an apply hung on it). SageMaker refuses the name; and
    the local server answers an SDK's retried attempt of the call it already answered (the same
    amz-sdk-invocation-id, attempt 2) with that answer, as the client never received it."""
    sm = moto_server.client("sagemaker")
    sm.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/x", PrimaryContainer={
        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/inference:abc",
        "ModelDataUrl": "s3://nowhere/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{
        "VariantName": "primary", "ModelName": "m", "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1}])

    attempt = {"n": 1}

    def as_one_invocation(request, **_):
        request.headers["amz-sdk-invocation-id"] = "one-call-of-the-provider"
        request.headers["amz-sdk-request"] = f"attempt={attempt['n']}; max=25"

    sm.meta.events.register("before-send.sagemaker.CreateEndpoint", as_one_invocation)
    first = sm.create_endpoint(EndpointName="ep", EndpointConfigName="c")["EndpointArn"]
    created = sm.describe_endpoint(EndpointName="ep")["CreationTime"]
    attempt["n"] = 2  # the answer was lost on the way: the SDK sends the same call again
    assert sm.create_endpoint(EndpointName="ep", EndpointConfigName="c")["EndpointArn"] == first
    assert sm.describe_endpoint(EndpointName="ep")["CreationTime"] == created  # not created again
    sm.meta.events.unregister("before-send.sagemaker.CreateEndpoint", as_one_invocation)

    with pytest.raises(ClientError, match=f'Cannot create already existing endpoint "{first}"') as caught:
        sm.create_endpoint(EndpointName="ep", EndpointConfigName="c")  # a call of its own
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_start_pipeline_execution_runs_the_definition_with_its_parameters(moto_server):
    """moto calls every execution Succeeded at once; the local AWS runs it (the local pipeline
    runner), with the execution's parameters, and honours the ClientRequestToken."""
    import json
    import time

    sm = moto_server.client("sagemaker")
    definition = {"Version": "2020-12-01", "Parameters": [{"Name": "MinAccuracy", "Type": "Float",
                                                           "DefaultValue": 0.9}],
                  "Steps": [{"Name": "Check", "Type": "Condition", "Arguments": {
                      "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": 0.95,
                                      "RightValue": {"Get": "Parameters.MinAccuracy"}}],
                      "IfSteps": [], "ElseSteps": [{"Name": "TooLow", "Type": "Fail",
                                                    "Arguments": {"ErrorMessage": "below the minimum"}}]}}]}
    sm.create_pipeline(PipelineName="runs", RoleArn="arn:aws:iam::123456789012:role/x",
                       PipelineDefinition=json.dumps(definition))

    def run(token: str, minimum: str) -> dict:
        arn = sm.start_pipeline_execution(PipelineName="runs", ClientRequestToken=token, PipelineParameters=[
            {"Name": "MinAccuracy", "Value": minimum}])["PipelineExecutionArn"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
            if described["PipelineExecutionStatus"] != "Executing":
                return described
            time.sleep(0.1)
        raise AssertionError(f"{arn} still Executing")

    passed = run("token-a-0123456789abcdefghijklmn", "0.9")
    assert passed["PipelineExecutionStatus"] == "Succeeded"
    failed = run("token-b-0123456789abcdefghijklmn", "0.99")  # a Float parameter sent as text
    assert failed["PipelineExecutionStatus"] == "Failed"
    again = run("token-a-0123456789abcdefghijklmn", "0.99")  # the same token: the same execution
    assert again["PipelineExecutionArn"] == passed["PipelineExecutionArn"]
    assert len(sm.list_pipeline_executions(PipelineName="runs")["PipelineExecutionSummaries"]) == 2


def test_sagemaker_requests_are_held_to_the_service_models_constraints(moto_server):
    sm = moto_server.client("sagemaker")
    container = {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-dev-inference:abc",
                 "ModelDataUrl": "s3://mlops-dev-artifacts/demo/model.tar.gz"}
    role = "arn:aws:iam::123456789012:role/mlops-dev/mlops-dev-sagemaker-execution"
    with pytest.raises(ClientError) as err:
        sm.create_model(ModelName="m" * 64, PrimaryContainer=container, ExecutionRoleArn=role)
    error = err.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert ("at 'modelName' failed to satisfy constraint: Member must have length less than or equal "
            "to 63") in error["Message"]
    assert sm.list_models()["Models"] == []  # refused before moto saw it
    # What SageMaker takes, moto still gets, body and all.
    sm.create_model(ModelName="m" * 63, PrimaryContainer=container, ExecutionRoleArn=role)
    assert sm.describe_model(ModelName="m" * 63)["PrimaryContainer"]["Image"] == container["Image"]


def test_an_object_locked_bucket_keeps_versions_unless_governance_is_bypassed(tmp_path):
    local = LocalAws(tmp_path / "local", tls=True)
    server, _ = local.start()
    try:
        s3 = server.client("s3")
        tls_only_bucket(s3, "locked-audit")
        s3.put_bucket_versioning(Bucket="locked-audit", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object_lock_configuration(Bucket="locked-audit", ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 30}}})
        version = s3.put_object(Bucket="locked-audit", Key="AWSLogs/trail.json.gz", Body=b"e")["VersionId"]
        with pytest.raises(ClientError) as err:
            s3.delete_object(Bucket="locked-audit", Key="AWSLogs/trail.json.gz", VersionId=version)
        assert err.value.response["Error"]["Code"] == "AccessDenied"
        # What `force_destroy` does on `local down`: GOVERNANCE lets it through.
        s3.delete_object(Bucket="locked-audit", Key="AWSLogs/trail.json.gz", VersionId=version,
                         BypassGovernanceRetention=True)
        assert "Versions" not in s3.list_object_versions(Bucket="locked-audit")
    finally:
        local.stop()


def test_put_metric_data_is_held_to_the_namespace_condition_when_iam_is_enforced(moto_server):
    """PutMetricData has no resource type: the namespace condition is its only scope. The local
    AWS fills `cloudwatch:namespace` from the request (moto evaluates policies without it)."""
    iam = moto_server.client("iam")
    iam.create_user(UserName="publisher")
    iam.put_user_policy(UserName="publisher", PolicyName="publish", PolicyDocument=document([
        statement("PublishChecks", ["cloudwatch:PutMetricData"], ["*"],
                  conditions={"StringEquals": {
                      "cloudwatch:namespace": ["MLOps/Drift", "MLOps/ModelQuality"]}}),
        statement("PublishJobs", ["cloudwatch:PutMetricData"], ["*"],
                  conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}),
    ]))
    key = iam.create_access_key(UserName="publisher")["AccessKey"]
    cloudwatch = moto_server.client("cloudwatch", credentials={
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]})
    datum = [{"MetricName": "Checked", "Value": 1.0}]
    moto_server.enforce_iam(True)
    try:
        for allowed in ("MLOps/Drift", "MLOps/ModelQuality", "/aws/sagemaker/TrainingJobs"):
            cloudwatch.put_metric_data(Namespace=allowed, MetricData=datum)
        for refused in ("MLOps/ControlLoop", "MLOps/Drift2", "/aws/lambda/x"):
            with pytest.raises(ClientError) as err:
                cloudwatch.put_metric_data(Namespace=refused, MetricData=datum)
            assert err.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException"), refused
    finally:
        moto_server.enforce_iam(False)


@pytest.fixture
def tls_server(tmp_path):
    """A local AWS serving HTTPS as `mlops local up` does (the moto_server fixture's is plain HTTP)."""
    local = LocalAws(tmp_path / "tls", tls=True, serve_endpoints=False, background=False)
    server, started = local.start()
    assert started and server.endpoint_url.startswith("https://")
    try:
        yield server
    finally:
        local.stop()


def test_conditions_are_evaluated_as_iam_evaluates_them_when_iam_is_enforced(tls_server):
    """local_aws/iam_conditions.py wired into moto's check: the request's keys and the caller's
    (aws:PrincipalArn is a session's role, aws:SecureTransport true over the local HTTPS, s3:prefix
    from ListObjectsV2, s3:ResourceAccount and aws:ResourceAccount the bucket's owner), a Deny whose
    condition does not hold does not apply, a key the request lacks makes a condition false, and
    StringLike's `[` is literal."""
    iam, s3 = tls_server.client("iam"), tls_server.client("s3")
    s3.create_bucket(Bucket="scoped")
    tls_server.account_client("s3", "999999999999").create_bucket(Bucket="scoped-elsewhere")
    boundary = iam.create_policy(PolicyName="boundary", PolicyDocument=document([
        statement("All", ["*"], ["*"])]))["Policy"]["Arn"]
    trust = document([statement("Lambda", ["sts:AssumeRole"], None,
                                principals={"Service": "lambda.amazonaws.com"})])
    role_arn = iam.create_role(RoleName="publisher", Path="/team/", AssumeRolePolicyDocument=document([
        statement("TrustUser", ["sts:AssumeRole"], None,
                  principals={"AWS": "arn:aws:iam::123456789012:user/caller"})]))["Role"]["Arn"]
    iam.put_role_policy(RoleName="publisher", PolicyName="scoped", PolicyDocument=document([
        statement("PublishOverTls", ["cloudwatch:PutMetricData"], ["*"], conditions={
            "StringLike": {"cloudwatch:namespace": ["MLOps/*", "Team[1]/*"]},
            "ArnEquals": {"aws:PrincipalArn": role_arn},
            "StringEquals": {"aws:PrincipalAccount": "123456789012",
                             "aws:RequestedRegion": tls_server.region},
            "Bool": {"aws:SecureTransport": "true"}}),
        statement("NeverSecrets", ["cloudwatch:PutMetricData"], ["*"], effect="Deny",
                  conditions={"StringLike": {"cloudwatch:namespace": "MLOps/Secret*"}}),
        statement("OnlyFromASource", ["s3:GetObject"], ["arn:aws:s3:::scoped/*"],
                  conditions={"ArnLike": {"aws:SourceArn": "arn:aws:s3:::*"}}),
        statement("ListDemo", ["s3:ListBucket"], ["arn:aws:s3:::scoped"],
                  conditions={"StringLike": {"s3:prefix": "demo/*"}}),
        # s3:ResourceAccount is the bucket's owner: the boundary's DenyOtherAccountsBuckets
        # refuses a bucket named like ours that another account owns
        statement("ReadScopedBuckets", ["s3:GetBucketLocation"], ["arn:aws:s3:::scoped*"]),
        statement("DenyOtherAccountsBuckets", ["s3:*"], ["arn:aws:s3:::scoped*", "arn:aws:s3:::scoped*/*"],
                  effect="Deny",
                  conditions={"StringNotEqualsIfExists": {"s3:ResourceAccount": "123456789012"}}),
        statement("OtherAccountsBucketOnly", ["s3:GetBucketVersioning"], ["arn:aws:s3:::scoped"],
                  conditions={"StringEquals": {"aws:ResourceAccount": "999999999999"}}),
        statement("CreateRoles", ["iam:CreateRole"], ["*"]),  # moto names no resource for a new role
        # The platform's boundary rule: a negated operator holds when the request lacks the key.
        statement("DenyRolesWithoutTheBoundary", ["iam:CreateRole"], ["*"], effect="Deny",
                  conditions={"StringNotEquals": {"iam:PermissionsBoundary": boundary}}),
    ]))
    iam.create_user(UserName="caller")
    iam.put_user_policy(UserName="caller", PolicyName="assume", PolicyDocument=document([
        statement("Assume", ["sts:AssumeRole"], [role_arn])]))
    key = iam.create_access_key(UserName="caller")["AccessKey"]
    iam.create_user(UserName="broken")
    iam.put_user_policy(UserName="broken", PolicyName="broken", PolicyDocument=document([
        statement("Yes", ["iam:ListUsers"], ["*"], conditions={"Bool": {"aws:SecureTransport": "yes"}})]))
    made = iam.create_access_key(UserName="broken")["AccessKey"]
    broken = {"AWS_ACCESS_KEY_ID": made["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": made["SecretAccessKey"]}
    tls_server.enforce_iam(True)
    try:
        me = tls_server.session_client_factory(role_arn, "conditions", assumed_with={
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]})
        cloudwatch, my_s3 = me("cloudwatch"), me("s3")
        datum = [{"MetricName": "Checked", "Value": 1.0}]
        for allowed in ("MLOps/Drift", "Team[1]/x"):
            cloudwatch.put_metric_data(Namespace=allowed, MetricData=datum)
        my_s3.list_objects_v2(Bucket="scoped", Prefix="demo/2026")

        def refused(call, **kwargs):
            with pytest.raises(ClientError) as err:
                call(**kwargs)
            assert err.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException"), kwargs

        refused(cloudwatch.put_metric_data, Namespace="MLOps/Secrets", MetricData=datum)
        refused(cloudwatch.put_metric_data, Namespace="Team1/x", MetricData=datum)  # `[1]` is literal
        refused(my_s3.get_object, Bucket="scoped", Key="a.txt")  # no aws:SourceArn in a person's call
        refused(my_s3.list_objects_v2, Bucket="scoped", Prefix="other/")
        refused(my_s3.list_objects_v2, Bucket="scoped")  # no prefix: the key is absent
        my_s3.get_bucket_location(Bucket="scoped")
        refused(my_s3.get_bucket_location, Bucket="scoped-elsewhere")  # owned by 999999999999
        refused(my_s3.get_bucket_versioning, Bucket="scoped")
        me("iam").create_role(RoleName="probe-bounded", AssumeRolePolicyDocument=trust,
                              PermissionsBoundary=boundary)
        refused(me("iam").create_role, RoleName="probe-unbounded", AssumeRolePolicyDocument=trust)
        # A condition IAM refuses when the policy is written (moto stores it): the call says so.
        with pytest.raises(ClientError) as err:
            tls_server.client("iam", credentials=broken).list_users()
        assert err.value.response["Error"]["Code"] == "MalformedPolicyDocument"
        assert "Bool takes true or false" in err.value.response["Error"]["Message"]
    finally:
        tls_server.enforce_iam(False)


def test_a_session_carries_its_source_identity_which_a_trust_policy_may_require(tls_server):
    """STS SourceIdentity (local_aws/source_identity.py): answered by AssumeRole, recorded in the
    registry's IamIdentity, inherited on role chaining and never changed there; with IAM enforced,
    a trust policy's `Null sts:SourceIdentity false` refuses a session without one, and setting one
    takes sts:SetSourceIdentity from both the caller's policy and the trust policy."""
    iam, sagemaker = tls_server.client("iam"), tls_server.client("sagemaker")
    people = document([statement("TrustPeople", ["sts:AssumeRole", "sts:SetSourceIdentity"], None,
                                 principals={"AWS": "arn:aws:iam::123456789012:user/person"},
                                 conditions={"Null": {"sts:SourceIdentity": "false"}})])
    role_arn = iam.create_role(RoleName="approver", AssumeRolePolicyDocument=people)["Role"]["Arn"]
    iam.put_role_policy(RoleName="approver", PolicyName="registry", PolicyDocument=document([
        statement("Register", ["sagemaker:CreateModelPackage"], ["*"])]))
    sagemaker.create_model_package_group(ModelPackageGroupName="persons")
    iam.create_user(UserName="person")
    made = iam.create_access_key(UserName="person")["AccessKey"]
    person = {"AWS_ACCESS_KEY_ID": made["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": made["SecretAccessKey"]}
    sts = tls_server.client("sts", credentials=person)

    def assume(**source: str) -> dict:
        return sts.assume_role(RoleArn=role_arn, RoleSessionName="any-name", **source)

    def refused(**source: str) -> None:
        with pytest.raises(ClientError) as err:
            assume(**source)
        assert err.value.response["Error"]["Code"] == "AccessDenied", source

    def allow(*actions: str) -> None:
        iam.put_user_policy(UserName="person", PolicyName="assume", PolicyDocument=document([
            statement("Assume", list(actions), [role_arn])]))

    tls_server.enforce_iam(True)
    try:
        allow("sts:AssumeRole")
        refused()  # the trust policy requires a source identity
        refused(SourceIdentity="alice")  # the caller's policy does not allow setting one
        allow("sts:AssumeRole", "sts:SetSourceIdentity")
        refused()
        answer = assume(SourceIdentity="alice")
    finally:
        tls_server.enforce_iam(False)
    assert answer["SourceIdentity"] == "alice"
    alice = tls_server.session_client_factory(role_arn, "not-alice", assumed_with=person,
                                              source_identity="alice")
    created = alice("sagemaker").create_model_package(
        ModelPackageGroupName="persons", ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "x"}], "SupportedContentTypes": ["text/csv"],
                                "SupportedResponseMIMETypes": ["text/csv"]})["ModelPackageArn"]
    identity = sagemaker.describe_model_package(ModelPackageName=created)["CreatedBy"]["IamIdentity"]
    assert identity["SourceIdentity"] == "alice" and identity["Arn"].endswith("/approver/not-alice")
    # Role chaining carries it on, and cannot change it.
    chained = alice("sts").assume_role(RoleArn=role_arn, RoleSessionName="chained")
    assert chained["SourceIdentity"] == "alice"
    with pytest.raises(ClientError, match="cannot set another"):
        alice("sts").assume_role(RoleArn=role_arn, RoleSessionName="chained", SourceIdentity="mallory")
    # A workload's session names no person.
    workload = tls_server.session_client_factory(role_arn, "workload")
    created = workload("sagemaker").create_model_package(
        ModelPackageGroupName="persons", ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "x"}], "SupportedContentTypes": ["text/csv"],
                                "SupportedResponseMIMETypes": ["text/csv"]})["ModelPackageArn"]
    assert "SourceIdentity" not in sagemaker.describe_model_package(ModelPackageName=created)["CreatedBy"][
        "IamIdentity"]


def test_promoted_copies_are_create_only_for_the_ml_engineer_when_iam_is_enforced(tls_server):
    """stacks/personas.py's create-only statements judged with an object write's conditional
    headers (s3:if-none-match, s3:ObjectCreationOperation: local_aws/iam_enforcement.py): a plain
    PUT or an unconditional CompleteMultipartUpload of a promoted copy is refused, a delete too;
    the multipart steps that take no header pass; elsewhere in the bucket nothing changes."""
    iam, s3 = tls_server.client("iam"), tls_server.client("s3")
    s3.create_bucket(Bucket="artifacts")
    refs = SimpleNamespace(buckets=SimpleNamespace(artifacts="arn:aws:s3:::artifacts"))
    iam.create_user(UserName="engineer")
    iam.put_user_policy(UserName="engineer", PolicyName="engineer", PolicyDocument=document([
        statement("ReadWriteArtifacts", ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                  ["arn:aws:s3:::artifacts/*"]),
        *personas._promoted_copies_create_only(refs)]))
    made = iam.create_access_key(UserName="engineer")["AccessKey"]
    engineer = tls_server.client("s3", credentials={
        "AWS_ACCESS_KEY_ID": made["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": made["SecretAccessKey"]})
    promoted, elsewhere = "demo/promoted/mlops-staging-demo/7/model.tar.gz", "demo/workspace/notes.txt"

    def refused(call, **kwargs):
        with pytest.raises(ClientError) as err:
            call(Bucket="artifacts", **kwargs)
        assert err.value.response["Error"]["Code"] == "AccessDenied", kwargs

    tls_server.enforce_iam(True)
    try:
        refused(engineer.put_object, Key=promoted, Body=b"model")
        engineer.put_object(Bucket="artifacts", Key=promoted, Body=b"model", IfNoneMatch="*")
        with pytest.raises(ClientError, match="PreconditionFailed"):  # S3's own check: the key exists
            engineer.put_object(Bucket="artifacts", Key=promoted, Body=b"other", IfNoneMatch="*")
        refused(engineer.delete_object, Key=promoted)
        second = promoted.replace("model.tar.gz", "model-1.tar.gz")
        upload = engineer.create_multipart_upload(Bucket="artifacts", Key=second)["UploadId"]
        etag = engineer.upload_part(Bucket="artifacts", Key=second, UploadId=upload, PartNumber=1,
                                    Body=b"part")["ETag"]
        parts = {"Parts": [{"ETag": etag, "PartNumber": 1}]}
        refused(engineer.complete_multipart_upload, Key=second, UploadId=upload, MultipartUpload=parts)
        engineer.complete_multipart_upload(Bucket="artifacts", Key=second, UploadId=upload,
                                           MultipartUpload=parts, IfNoneMatch="*")
        engineer.put_object(Bucket="artifacts", Key=elsewhere, Body=b"draft")
        engineer.put_object(Bucket="artifacts", Key=elsewhere, Body=b"draft 2")
        engineer.delete_object(Bucket="artifacts", Key=elsewhere)
    finally:
        tls_server.enforce_iam(False)
    assert s3.get_object(Bucket="artifacts", Key=promoted)["Body"].read() == b"model"


def test_the_ml_engineer_registers_packages_pending_or_rejected_never_approved(tls_server):
    """stacks/personas.py RegisterDrillPackages, as synthesized for `local`, with IAM enforced:
    the drill's copy and the promoted package (PendingManualApproval) and the RBAC probe
    (Rejected) are registered; a package created Approved, skipping the gate and the four eyes,
    is refused."""
    naming = Naming.of(load_environments(ROOT, ["local"])["local"])
    refs = personas.PlatformRefs(
        naming=naming, key_arn="*", buckets=personas.BucketRefs(*(["arn:aws:s3:::b"] * 5)),
        repository_arns=(), execution_role_arn=naming.role_arn("x"), secret_arn_pattern="*", protected=False)
    (register,) = [s for s in personas.ml_engineer(refs) if s["Sid"] == "RegisterDrillPackages"]
    iam, sagemaker = tls_server.client("iam"), tls_server.client("sagemaker")
    group = f"{naming.prefix}-demo"
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    iam.create_user(UserName="engineer")
    iam.put_user_policy(UserName="engineer", PolicyName="register", PolicyDocument=document([register]))
    made = iam.create_access_key(UserName="engineer")["AccessKey"]
    engineer = tls_server.client("sagemaker", credentials={
        "AWS_ACCESS_KEY_ID": made["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": made["SecretAccessKey"]})

    def create(status: str) -> str:
        return engineer.create_model_package(
            ModelPackageGroupName=group, ModelApprovalStatus=status,
            InferenceSpecification={"Containers": [{"Image": "x"}], "SupportedContentTypes": ["text/csv"],
                                    "SupportedResponseMIMETypes": ["text/csv"]})["ModelPackageArn"]

    tls_server.enforce_iam(True)
    try:
        create("PendingManualApproval")
        create("Rejected")
        with pytest.raises(ClientError) as err:
            create("Approved")
        assert err.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException")
    finally:
        tls_server.enforce_iam(False)
