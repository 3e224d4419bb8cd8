"""The local AWS: everything that stands in for AWS on a laptop or in CI (see README.md here).

Imported only by the CLI (mlops/) and the tests; never by the stacks or by code that runs in AWS.
"""
