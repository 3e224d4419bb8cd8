"""Reusable constructs: one file each, typed props, secure defaults.

Each construct exposes what others need (ARNs, names) and the IAM statements that grant access to
it, so stacks derive IAM from resources instead of copying ARNs around.
"""
