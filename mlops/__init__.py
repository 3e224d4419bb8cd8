"""The `mlops` command line: synthesize, deploy and operate the platform."""
