"""The drift handler (handler.py)."""
