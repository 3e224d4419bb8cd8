"""The gate handler (handler.py)."""
