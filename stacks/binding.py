"""The one place that imports cdktf, constructs and the AWS provider binding.

cdktf is archived upstream; its continuation (CDK Terrain, `cdktn`) keeps the API under a new name,
so a rename touches only this file. Importing the binding costs ~10 s and ~600 MB (jsii loads the
whole provider into node): import it once per process, never from Lambda code.
"""

import os

# jsii prints a banner on every start for Node releases it no longer tests; the machines run Node 20
# and the synthesized JSON does not depend on the Node version.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import cdktf
import cdktf_cdktf_provider_aws as aws
from constructs import Construct

__all__ = ["Construct", "aws", "cdktf"]
