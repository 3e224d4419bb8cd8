"""The rollback handler (handler.py)."""
