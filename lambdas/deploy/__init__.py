"""The deploy handler (handler.py)."""
