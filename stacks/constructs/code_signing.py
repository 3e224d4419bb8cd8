"""Lambda code signing with AWS Signer: the environment's signing profile (platform stack), and per
project stack an Enforce code-signing config plus the signing of each zip its functions and layers
deploy from.

The contract (Lambda developer guide, "Using code signing to verify code integrity"): a function
with a code-signing config whose policy is Enforce accepts only code signed by one of the config's
allowed signing profile versions, and every layer it uses must be signed by an allowed profile
too. Signer signs an object of a versioned bucket (the source names the object's version) and
writes the signed copy under a destination prefix; the function or layer is then created from that
signed object. Uploading a changed zip makes a new object version, so a new signing job, so a new
signed object, whose new key is what makes Terraform update the code.

Lambda checks the signatures itself; whoever deploys needs the Signer and Lambda actions that
stacks/deployer_policy.py lists. The local AWS cannot sign: local environments set
`lambda_code_signing: false` (stacks/moto_gaps.py) and their functions deploy unsigned zips.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws

# Lambda's signing platform (the only one Lambda accepts).
PLATFORM = "AWSLambda-SHA384-ECDSA"
# How long a signature stays valid. Lambda refuses, at deployment, code whose signature expired;
# layers are content-addressed and keep their signed object while their pins stay, so a short
# validity would block deploying an unchanged layer. Trust is withdrawn by revoking the profile or
# a signature instead (Signer's RevokeSigningProfile / RevokeSignature).
SIGNATURE_VALIDITY_MONTHS = 60


def signing_profile(scope: Construct, id_: str, name: str) -> aws.signer_signing_profile.SignerSigningProfile:
    """The environment's signing profile (one per environment, in its platform stack)."""
    sp = aws.signer_signing_profile
    return sp.SignerSigningProfile(
        scope, id_, name=name, platform_id=PLATFORM,
        signature_validity_period=sp.SignerSigningProfileSignatureValidityPeriod(
            type="MONTHS", value=SIGNATURE_VALIDITY_MONTHS),
    )


@dataclass(frozen=True)
class CodeSigningProps:
    profile_name: str  # the environment's profile (Naming.signing_profile), found by name
    description: str
    bucket: str  # versioned: the unsigned zips and their signed copies (the artifacts bucket)
    upload_prefix: str  # where function zips are uploaded, e.g. demo/lambda-functions
    signed_prefix: str  # where Signer writes the signed copies, e.g. demo/lambda-signed/
    kms_key_arn: str

    def __post_init__(self) -> None:
        if not self.signed_prefix.endswith("/"):
            raise ValueError(f"signed_prefix {self.signed_prefix!r} must end with '/' (a folder)")


@dataclass(frozen=True)
class SignedObject:
    bucket: str
    key: str


class CodeSigning(Construct):
    """An Enforce code-signing config allowing the environment's profile, and the signing jobs."""

    def __init__(self, scope: Construct, id_: str, props: CodeSigningProps):
        super().__init__(scope, id_)
        self.props = props
        # The profile is the platform stack's: found by name, as every platform resource is.
        self.profile = aws.data_aws_signer_signing_profile.DataAwsSignerSigningProfile(
            self, "profile", name=props.profile_name)
        csc = aws.lambda_code_signing_config
        self.config = csc.LambdaCodeSigningConfig(
            self, "config", description=props.description[:256],
            allowed_publishers=csc.LambdaCodeSigningConfigAllowedPublishers(
                signing_profile_version_arns=[self.profile.version_arn]),
            policies=csc.LambdaCodeSigningConfigPolicies(untrusted_artifact_on_deployment="Enforce"),
        )

    @property
    def config_arn(self) -> str:
        return self.config.arn

    def upload(self, scope: Construct, id_: str, name: str, source: str,
               source_hash: str) -> aws.s3_object.S3Object:
        """A function's zip (relative to the stack folder) uploaded unsigned, SSE-KMS."""
        p = self.props
        return aws.s3_object.S3Object(
            scope, id_, bucket=p.bucket, key=f"{p.upload_prefix}/{name}", source=source,
            source_hash=source_hash, server_side_encryption="aws:kms", kms_key_id=p.kms_key_arn,
        )

    def sign(self, scope: Construct, id_: str, unsigned: aws.s3_object.S3Object) -> SignedObject:
        """A signing job for that version of the object; what to create the code from."""
        job_ = aws.signer_signing_job
        job = job_.SignerSigningJob(
            scope, id_, profile_name=self.props.profile_name,
            source=job_.SignerSigningJobSource(s3=job_.SignerSigningJobSourceS3(
                bucket=unsigned.bucket, key=unsigned.key, version=unsigned.version_id)),
            destination=job_.SignerSigningJobDestination(s3=job_.SignerSigningJobDestinationS3(
                bucket=self.props.bucket, prefix=self.props.signed_prefix)),
            # A failed job fails the apply: nothing is created from an object that is not signed.
            ignore_signing_job_failure=False,
        )
        signed = job.signed_object.get(0).s3.get(0)
        return SignedObject(bucket=signed.bucket, key=signed.key)
