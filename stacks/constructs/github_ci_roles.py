"""The two roles GitHub Actions assumes in one environment, by OIDC web identity (no access keys).

- `<prefix>-github-plan`, for pull requests (`repo:<owner/name>:pull_request`): `terraform plan`
  only. AWS's ReadOnlyAccess for the refresh, the environment's state (read, and its lock object),
  and explicit denies of what would read data rather than configuration: secret values, table
  items, log events, image layers, the capture, audit and access-log objects, and any KMS decrypt
  but the state key's (the platform's data is encrypted with the platform key, so no other object
  body can be read). A pull request runs its own copy of the workflow, so this role is what any
  branch can reach.
- `<prefix>-github-deploy`, only for jobs in the GitHub environment of the same name
  (`repo:<owner/name>:environment:<env>`; the environment must admit only `main`, and staging and
  prod wait for a reviewer there): AWS's PowerUserAccess (everything but IAM, Organizations and
  Account) and IAM only on the environment's own role path. Every role it creates or whose
  policies it changes carries the environment's permissions boundary (AWS's
  delegated-administration pattern), except the two EKS service roles, which EKS needs without it
  and which get EKS's managed policies only; it never removes a boundary, never changes the
  boundary policy itself (an administrator does) and assumes no role.

Both live on the CI path (`/ci/`), outside the role path the deploy role manages, and the
boundary denies every IAM write there, so no role the deploy role makes can reach them either.
The account's OIDC provider is the bootstrap stack's (one per account). What stays open, and is
written in the README: a role it creates may trust any principal (IAM has no condition on a
trust policy's content), capped by the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws
from stacks.constructs.eks_serving import CLUSTER_POLICIES, NODE_POLICIES
from stacks.deployer_policy import deployment_guards
from stacks.naming import Naming
from stacks.policy import Statement, document, statement
from stacks.replication import state_replica_logs

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_AUDIENCE = "sts.amazonaws.com"
# The certificate thumbprints GitHub publishes for its OIDC endpoint. IAM verifies this provider
# against its own trusted CAs and ignores them, but the API still takes the argument.
GITHUB_THUMBPRINTS = ("6938fd4d98bab03faadb97b34396831e3780aea1",
                      "1c58a3a8518e8759bf075b76b750d4f2df264fcd")
MANAGED = "arn:aws:iam::aws:policy/"
ROLE_ACTIONS = (
    "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole", "iam:TagRole",
    "iam:UntagRole", "iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy",
    "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
    "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:PutRolePermissionsBoundary",
    "iam:ListInstanceProfilesForRole", "iam:PassRole", "iam:UpdateRoleDescription",
)
POLICY_ACTIONS = (
    "iam:CreatePolicy", "iam:DeletePolicy", "iam:GetPolicy", "iam:GetPolicyVersion",
    "iam:ListPolicyVersions", "iam:CreatePolicyVersion", "iam:DeletePolicyVersion",
    "iam:TagPolicy", "iam:UntagPolicy",
)
OIDC_PROVIDER_ACTIONS = (
    "iam:CreateOpenIDConnectProvider", "iam:DeleteOpenIDConnectProvider",
    "iam:GetOpenIDConnectProvider", "iam:TagOpenIDConnectProvider",
    "iam:UntagOpenIDConnectProvider", "iam:UpdateOpenIDConnectProviderThumbprint",
    "iam:AddClientIDToOpenIDConnectProvider", "iam:RemoveClientIDFromOpenIDConnectProvider",
)


@dataclass(frozen=True)
class GithubCiRolesProps:
    naming: Naming
    environment: str  # the GitHub environment the deploy jobs run in (the environment's name)
    repository: str  # owner/name
    provider_arn: str  # the account's token.actions.githubusercontent.com OIDC provider
    state_bucket: str
    state_key_prefix: str  # the environment's state objects: <bucket>/<prefix>/<env>/*.tfstate
    state_key_arn: str
    # The deploy job runs up to two hours (a fresh environment's MLflow server, EKS, endpoints):
    # its credentials must outlive it, or an apply dies half-way holding the state lock.
    plan_session_seconds: int = 3600
    deploy_session_seconds: int = 3 * 3600


class GithubCiRoles(Construct):
    def __init__(self, scope: Construct, id_: str, props: GithubCiRolesProps):
        super().__init__(scope, id_)
        self.props = props
        n = props.naming
        self.plan = self._role("plan", f"repo:{props.repository}:pull_request",
                               "terraform plan of the environment from pull requests (read-only)",
                               ["ReadOnlyAccess"], self._plan_statements(), props.plan_session_seconds)
        self.deploy = self._role("deploy", f"repo:{props.repository}:environment:{props.environment}",
                                 "mlops deploy of the environment from its GitHub environment",
                                 ["PowerUserAccess"], self._deploy_statements(),
                                 props.deploy_session_seconds)
        self.plan_arn, self.deploy_arn = n.ci_role_arn("plan"), n.ci_role_arn("deploy")

    def _role(self, kind: str, subject: str, description: str, managed: list[str],
              statements: list[Statement], session_seconds: int) -> aws.iam_role.IamRole:
        n, p = self.props.naming, self.props
        trust = statement(
            "GithubActions", ["sts:AssumeRoleWithWebIdentity"], principals={"Federated": p.provider_arn},
            conditions={"StringEquals": {f"{GITHUB_OIDC_HOST}:aud": GITHUB_AUDIENCE,
                                         f"{GITHUB_OIDC_HOST}:sub": subject}})
        role = aws.iam_role.IamRole(
            self, kind, name=n.ci_role_name(kind), path=n.CI_ROLE_PATH, description=description,
            assume_role_policy=document([trust]), max_session_duration=session_seconds)
        aws.iam_role_policy.IamRolePolicy(self, f"{kind}_policy", name=f"{n.ci_role_name(kind)}-permissions",
                                          role=role.name, policy=document(statements))
        for policy in managed:
            aws.iam_role_policy_attachment.IamRolePolicyAttachment(
                self, f"{kind}_{policy.lower()}", role=role.name, policy_arn=MANAGED + policy)
        return role

    def _state(self) -> tuple[str, str]:
        p = self.props
        return f"arn:aws:s3:::{p.state_bucket}", f"{p.state_key_prefix}/{p.environment}/"

    def _plan_statements(self) -> list[Statement]:
        p, n = self.props, self.props.naming
        bucket, prefix = self._state()
        return [
            statement("ListState", ["s3:ListBucket"], [bucket],
                      conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}}),
            statement("ReadState", ["s3:GetObject"], [f"{bucket}/{prefix}*"]),
            # A plan takes the state lock (Terraform's lock object next to the state).
            statement("LockState", ["s3:PutObject", "s3:DeleteObject"], [f"{bucket}/{prefix}*.tflock"]),
            statement("UseStateKey", ["kms:Decrypt", "kms:GenerateDataKey"], [p.state_key_arn]),
            statement("NoDataReads",
                      ["secretsmanager:GetSecretValue", "dynamodb:GetItem", "dynamodb:BatchGetItem",
                       "dynamodb:Query", "dynamodb:Scan", "dynamodb:PartiQLSelect",
                       "sagemaker:InvokeEndpoint", "lambda:InvokeFunction",
                       # CloudWatch Logs decrypts for any caller it lets read; image layers.
                       "logs:GetLogEvents", "logs:FilterLogEvents", "logs:StartQuery",
                       "logs:GetQueryResults", "logs:StartLiveTail", "logs:GetLogRecord",
                       "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], ["*"], effect="Deny"),
            # Buckets that hold no object Terraform manages, only data and evidence (the SSE-S3
            # access logs among them, which the key deny below would not cover).
            statement("NoObjectReads", ["s3:GetObject", "s3:GetObjectVersion"],
                      [*(f"arn:aws:s3:::{n.bucket(b + replica)}/*"
                         for b in ("capture", "audit", "access-logs") for replica in ("", "-replica")),
                       f"arn:aws:s3:::{p.state_bucket}-logs/*",
                       f"arn:aws:s3:::{state_replica_logs(p.state_bucket)}/*"], effect="Deny"),
            {"Sid": "NoDecryptButState", "Effect": "Deny", "Action": "kms:Decrypt",
             "NotResource": p.state_key_arn},
        ]

    def _deploy_statements(self) -> list[Statement]:
        n = self.props.naming
        roles = f"arn:aws:iam::{n.account_id}:role{n.role_path}*"
        return [
            statement("ManageEnvironmentRoles", list(ROLE_ACTIONS), [roles]),
            statement("ManageEnvironmentPolicies", list(POLICY_ACTIONS),
                      [f"arn:aws:iam::{n.account_id}:policy{n.role_path}*"]),
            statement("ReadManagedPolicies", ["iam:GetPolicy", "iam:GetPolicyVersion"], [f"{MANAGED}*"]),
            statement("ServiceLinkedRoles", ["iam:CreateServiceLinkedRole"],
                      [f"arn:aws:iam::{n.account_id}:role/aws-service-role/*"]),
            statement("EksOidcProvider", list(OIDC_PROVIDER_ACTIONS),
                      [f"arn:aws:iam::{n.account_id}:oidc-provider/oidc.eks.{n.region}.amazonaws.com/*"]),
            *deployment_guards(n, [MANAGED + policy for policy in (*CLUSTER_POLICIES, *NODE_POLICIES)]),
        ]
