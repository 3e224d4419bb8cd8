"""CDKTF stacks, their configuration models and the reusable constructs they are built from."""
